/* weights/: the config, typed key/value pairs stored as readable text lines
 *     dvae.codebook = 512
 *     dvae.tau_min = 0.0625
 *     tokenizer.kind = "sentencepiece"
 * (grammar in weights/FORMAT.md). Each value keeps its text form, so printing and
 * writing need no reformatting and a file's config is written back unchanged. */
#include "weights/wf_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    wf_cfg_type type;
    int64_t i;
    double f;
    char *s;     /* decoded string value */
    char *text;  /* the value as written in the file */
} cfg_entry_t;

struct wf_config {
    cfg_entry_t *e;
    int n, cap;
};

wf_config_t *wf_config_create(void) { return calloc(1, sizeof(wf_config_t)); }

static void entry_clear(cfg_entry_t *e)
{
    free(e->s);
    free(e->text);
    e->s = e->text = NULL;
}

void wf_config_free(wf_config_t *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        entry_clear(&c->e[i]);
        free(c->e[i].key);
    }
    free(c->e);
    free(c);
}

static cfg_entry_t *find(const wf_config_t *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->e[i].key, key) == 0) return &c->e[i];
    return NULL;
}

/* The entry for key, new (appended) or existing with its old value freed. */
static cfg_entry_t *slot(wf_config_t *c, const char *key)
{
    if (!c || !key || !wf_valid_name(key, strlen(key), WF_MAX_KEY)) return NULL;
    cfg_entry_t *e = find(c, key);
    if (e) {
        entry_clear(e);
        return e;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        cfg_entry_t *ne = realloc(c->e, (size_t)cap * sizeof *ne);
        if (!ne) return NULL;
        c->e = ne;
        c->cap = cap;
    }
    e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    if (!(e->key = strdup(key))) return NULL;
    c->n++;
    return e;
}

int wf_config_set_int(wf_config_t *c, const char *key, int64_t v)
{
    cfg_entry_t *e = slot(c, key);
    if (!e) return c && key && wf_valid_name(key, strlen(key), WF_MAX_KEY) ? WF_ENOMEM : WF_EINVAL;
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    e->type = WF_CFG_INT;
    e->i = v;
    e->f = (double)v;
    return (e->text = strdup(buf)) ? WF_OK : WF_ENOMEM;
}

/* Shortest "%.*g" that reads back as the same double, always with a '.' or an 'e' so
 * it reads back as a float. Needs the "C" LC_NUMERIC (dalle-c never calls setlocale). */
static void format_double(char *buf, size_t n, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".e")) strncat(buf, ".0", n - strlen(buf) - 1);
}

int wf_config_set_float(wf_config_t *c, const char *key, double v)
{
    if (!isfinite(v)) return WF_EINVAL;
    cfg_entry_t *e = slot(c, key);
    if (!e) return c && key && wf_valid_name(key, strlen(key), WF_MAX_KEY) ? WF_ENOMEM : WF_EINVAL;
    char buf[40];
    format_double(buf, sizeof buf, v);
    e->type = WF_CFG_FLOAT;
    e->f = v;
    return (e->text = strdup(buf)) ? WF_OK : WF_ENOMEM;
}

int wf_config_set_str(wf_config_t *c, const char *key, const char *v)
{
    if (!v) return WF_EINVAL;
    cfg_entry_t *e = slot(c, key);
    if (!e) return c && key && wf_valid_name(key, strlen(key), WF_MAX_KEY) ? WF_ENOMEM : WF_EINVAL;
    size_t len = strlen(v);
    e->type = WF_CFG_STR;
    e->s = strdup(v);
    e->text = malloc(4 * len + 3);
    if (!e->s || !e->text) return WF_ENOMEM;
    char *t = e->text;
    *t++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '"' || ch == '\\') {
            *t++ = '\\';
            *t++ = (char)ch;
        } else if (ch == '\n') {
            *t++ = '\\';
            *t++ = 'n';
        } else if (ch == '\t') {
            *t++ = '\\';
            *t++ = 't';
        } else if (ch < 0x20 || ch >= 0x7F) {
            t += sprintf(t, "\\x%02x", ch);
        } else {
            *t++ = (char)ch;
        }
    }
    *t++ = '"';
    *t = 0;
    return WF_OK;
}

int wf_config_get_int(const wf_config_t *c, const char *key, int64_t *out)
{
    const cfg_entry_t *e = c && key ? find(c, key) : NULL;
    if (!e) return WF_ENOTFOUND;
    if (e->type != WF_CFG_INT) return WF_ESHAPE;
    *out = e->i;
    return WF_OK;
}

int wf_config_get_float(const wf_config_t *c, const char *key, double *out)
{
    const cfg_entry_t *e = c && key ? find(c, key) : NULL;
    if (!e) return WF_ENOTFOUND;
    if (e->type == WF_CFG_STR) return WF_ESHAPE;
    *out = e->f;
    return WF_OK;
}

int wf_config_get_str(const wf_config_t *c, const char *key, const char **out)
{
    const cfg_entry_t *e = c && key ? find(c, key) : NULL;
    if (!e) return WF_ENOTFOUND;
    if (e->type != WF_CFG_STR) return WF_ESHAPE;
    *out = e->s;
    return WF_OK;
}

int wf_config_count(const wf_config_t *c) { return c ? c->n : 0; }
const char *wf_config_key(const wf_config_t *c, int i)
{
    return c && i >= 0 && i < c->n ? c->e[i].key : NULL;
}
wf_cfg_type wf_config_type(const wf_config_t *c, int i)
{
    return c && i >= 0 && i < c->n ? c->e[i].type : WF_CFG_INT;
}
const char *wf_config_text(const wf_config_t *c, int i)
{
    return c && i >= 0 && i < c->n ? c->e[i].text : NULL;
}

/* ---------------------------------------------------------------- text form */

#define CONFIG_FIRST_LINE "# dalle-c model config\n"

char *wf_config_serialize(const wf_config_t *c, size_t *len)
{
    size_t n = sizeof CONFIG_FIRST_LINE;
    for (int i = 0; c && i < c->n; i++) n += strlen(c->e[i].key) + strlen(c->e[i].text) + 4;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "%s", CONFIG_FIRST_LINE);
    for (int i = 0; c && i < c->n; i++) p += sprintf(p, "%s = %s\n", c->e[i].key, c->e[i].text);
    *len = (size_t)(p - s);
    return s;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes the quoted string v[n] (quotes included) into out (n bytes suffice). */
static const char *parse_string(const char *v, size_t n, char *out)
{
    if (n < 2 || v[0] != '"' || v[n - 1] != '"') return "a string must be in double quotes";
    char *o = out;
    for (size_t i = 1; i + 1 < n; i++) {
        char ch = v[i];
        if (ch == '"') return "unescaped '\"' inside a string";
        if (ch != '\\') {
            *o++ = ch;
            continue;
        }
        if (i + 2 >= n) return "string ends with a lone '\\'";
        ch = v[++i];
        if (ch == 'n') *o++ = '\n';
        else if (ch == 't') *o++ = '\t';
        else if (ch == '"' || ch == '\\') *o++ = ch;
        else if (ch == 'x' && i + 3 < n && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
            int b = hexval(v[i + 1]) * 16 + hexval(v[i + 2]);
            if (b == 0) return "\\x00 is not allowed in a string";
            *o++ = (char)b;
            i += 2;
        } else return "unknown escape in a string";
    }
    *o = 0;
    return NULL;
}

/* One "key = value" line (line[n], no newline) into c. NULL or the problem. */
static const char *parse_line(wf_config_t *c, const char *line, size_t n, int *oom)
{
    size_t k = 0;
    while (k < n && line[k] != ' ' && line[k] != '\t' && line[k] != '=') k++;
    if (!wf_valid_name(line, k, WF_MAX_KEY)) return "bad key (want [A-Za-z0-9_.:/-]+)";
    char key[WF_MAX_KEY + 1];
    memcpy(key, line, k);
    key[k] = 0;
    if (find(c, key)) return "duplicate key";
    size_t i = k;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i >= n || line[i] != '=') return "expected '='";
    i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t end = n;
    while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t')) end--;
    const char *v = line + i;
    size_t vn = end - i;
    if (vn == 0) return "missing value";
    int st;
    if (v[0] == '"') {
        char *s = malloc(vn);
        if (!s) return *oom = 1, "out of memory";
        const char *why = parse_string(v, vn, s);
        if (!why) st = wf_config_set_str(c, key, s);
        free(s);
        if (why) return why;
    } else {
        char num[64];
        if (vn >= sizeof num) return "number too long";
        memcpy(num, v, vn);
        num[vn] = 0;
        for (size_t j = 0; j < vn; j++)
            if (!strchr("0123456789+-.eE", num[j])) return "bad value (want a number or a \"string\")";
        char *endp;
        errno = 0;
        if (strpbrk(num, ".eE")) {
            double d = strtod(num, &endp);
            if (*endp || endp == num || !isfinite(d)) return "bad float"; /* ERANGE on underflow is fine */
            st = wf_config_set_float(c, key, d);
        } else {
            long long ll = strtoll(num, &endp, 10);
            if (*endp || errno == ERANGE || endp == num) return "bad integer";
            st = wf_config_set_int(c, key, ll);
        }
        /* keep the text as written so the file's bytes survive a rewrite */
        if (st == WF_OK) {
            cfg_entry_t *e = find(c, key);
            char *t = strdup(num);
            if (!t) return *oom = 1, "out of memory";
            free(e->text);
            e->text = t;
        }
    }
    if (st == WF_ENOMEM) return *oom = 1, "out of memory";
    return st == WF_OK ? NULL : "bad value";
}

int wf_config_parse(wf_config_t **out, const char *text, size_t len, char *msg, size_t msg_size)
{
    *out = NULL;
    wf_config_t *c = wf_config_create();
    if (!c) return snprintf(msg, msg_size, "out of memory"), WF_ENOMEM;
    size_t pos = 0;
    int lineno = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl) {
            snprintf(msg, msg_size, "config line %d does not end with a newline", lineno);
            wf_config_free(c);
            return WF_ECORRUPT;
        }
        size_t n = (size_t)(nl - (text + pos));
        const char *line = text + pos;
        pos += n + 1;
        for (size_t j = 0; j < n; j++)
            if ((unsigned char)line[j] < 0x20 ? line[j] != '\t' : (unsigned char)line[j] >= 0x7F) {
                snprintf(msg, msg_size, "config line %d has a non-printable byte", lineno);
                wf_config_free(c);
                return WF_ECORRUPT;
            }
        size_t s = 0;
        while (s < n && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s == n || line[s] == '#') continue;
        int oom = 0;
        const char *why = parse_line(c, line + s, n - s, &oom);
        if (why) {
            snprintf(msg, msg_size, "config line %d: %s", lineno, why);
            wf_config_free(c);
            return oom ? WF_ENOMEM : WF_ECORRUPT;
        }
    }
    *out = c;
    return WF_OK;
}

int wf_config_copy_entry(wf_config_t *dst, const wf_config_t *src, int i)
{
    if (!src || i < 0 || i >= src->n) return WF_EINVAL;
    const cfg_entry_t *e = &src->e[i];
    switch (e->type) {
    case WF_CFG_INT: return wf_config_set_int(dst, e->key, e->i);
    case WF_CFG_FLOAT: return wf_config_set_float(dst, e->key, e->f);
    default: return wf_config_set_str(dst, e->key, e->s);
    }
}

int wf_config_store_fields(wf_config_t *c, const void *s, const wf_field_t *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)s + fields[i].offset;
        int rc = fields[i].is_float ? wf_config_set_float(c, fields[i].key, *(const float *)p)
                                    : wf_config_set_int(c, fields[i].key, *(const int *)p);
        if (rc) return rc;
    }
    return WF_OK;
}

int wf_config_read_fields(const wf_config_t *c, void *s, const wf_field_t *fields, size_t n,
                          const char *path, char err[WF_ERR_SIZE])
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = (char *)s + fields[i].offset;
        int rc;
        if (fields[i].is_float) {
            double v;
            rc = wf_config_get_float(c, fields[i].key, &v);
            if (rc == WF_OK) *(float *)p = (float)v;
        } else {
            int64_t v;
            rc = wf_config_get_int(c, fields[i].key, &v);
            if (rc == WF_OK) {
                if (v < -2147483647 || v > 2147483647) rc = WF_ESHAPE;
                else *(int *)p = (int)v;
            }
        }
        if (rc == WF_OK) found++;
        else if (rc != WF_ENOTFOUND) {
            if (err)
                snprintf(err, WF_ERR_SIZE, "%s: config \"%s\" has the wrong type or range",
                         path, fields[i].key);
            return -1;
        }
    }
    return found;
}
