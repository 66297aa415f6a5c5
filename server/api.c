/* The JSON of the API (jansson): requests checked field by field into dalle_params_t,
 * OpenAI-shaped responses and error bodies, and the events of a stream. */
#include "server/server_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seeds drawn for requests without one stay below 2^53, so JavaScript (the page) and
 * any JSON reader that keeps numbers as doubles reads them exactly. */
#define RANDOM_SEED_MASK ((INT64_C(1) << 53) - 1)

int api_fail(api_error_t *e, int status, const char *param, const char *fmt, ...)
{
    memset(e, 0, sizeof *e);
    e->status = status;
    e->type = status >= 500 ? "server_error" : "invalid_request_error";
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* one line, even when it quotes the request (jansson's "near '...'" can hold a
     * newline) */
    for (char *c = e->message; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
    return -1;
}

/* json_dumps of root, which is released; NULL when root is NULL or out of memory. */
static char *dump(json_t *root)
{
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

/* obj[key] = value, taking value. 0, or -1 when obj or value is NULL (out of memory) or
 * the set fails. Chained with ||, the first failure skips the rest (whose values are
 * then never made). */
static int put(json_t *obj, const char *key, json_t *value)
{
    return obj && value ? json_object_set_new(obj, key, value) : (json_decref(value), -1);
}

/* A JSON string of text, whose bytes past ASCII become '?' when they are not valid UTF-8
 * (a message quoting a request cut in the middle of a character). */
static json_t *json_text(const char *text)
{
    json_t *v = json_string(text);
    if (v) return v;
    char *ascii = strdup(text);
    if (!ascii) return NULL;
    for (char *c = ascii; *c; c++)
        if ((unsigned char)*c >= 0x80) *c = '?';
    v = json_string(ascii);
    free(ascii);
    return v;
}

static json_t *error_object(const api_error_t *e)
{
    json_t *err = json_object();
    int bad = put(err, "message", json_text(e->message)) ||
              put(err, "type", json_string(e->type ? e->type : "invalid_request_error")) ||
              put(err, "param", e->param[0] ? json_text(e->param) : json_null()) ||
              put(err, "code", e->code ? json_string(e->code) : json_null());
    if (bad) {
        json_decref(err);
        return NULL;
    }
    return err;
}

char *api_error_body(const api_error_t *e)
{
    json_t *root = json_object();
    if (put(root, "error", error_object(e))) {
        json_decref(root);
        return NULL;
    }
    return dump(root);
}

void gen_request_free(gen_request_t *r)
{
    free(r->prompt);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- requests */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* A whole number (an integer, or a real with no fraction) in [lo, hi]. */
static int get_int(const json_t *v, const char *key, long long lo, long long hi, long long *out,
                   api_error_t *e)
{
    double d = json_is_real(v) ? json_real_value(v) : 0;
    if (json_is_integer(v)) *out = json_integer_value(v);
    else if (json_is_real(v) && d == floor(d) && fabs(d) < 9e15) *out = (long long)d;
    else if (json_is_real(v))
        return api_fail(e, 400, key, "'%s' must be a whole number from %lld to %lld, got %g", key,
                        lo, hi, d);
    else return api_fail(e, 400, key, "'%s' must be a whole number from %lld to %lld, not %s", key,
                         lo, hi, type_name(v));
    if (*out < lo || *out > hi)
        return api_fail(e, 400, key, "'%s' must be from %lld to %lld, got %lld", key, lo, hi, *out);
    return 0;
}

/* A number in [lo, hi]; above lo only when open_lo. */
static int get_float(const json_t *v, const char *key, double lo, double hi, int open_lo,
                     float *out, api_error_t *e)
{
    if (!json_is_number(v))
        return api_fail(e, 400, key, "'%s' must be a number, not %s", key, type_name(v));
    const double d = json_number_value(v);
    /* in range as a double first (so the conversion is defined), then as the float that
     * is used: 1e-60 is above 0, but not once it is a float */
    if (!(d >= lo && d <= hi) || (open_lo && !((float)d > lo)))
        return api_fail(e, 400, key, "'%s' must be %s %g and at most %g, got %g", key,
                        open_lo ? "above" : "at least", lo, hi, d);
    *out = (float)d;
    return 0;
}

static int get_string(const json_t *v, const char *key, const char **out, api_error_t *e)
{
    if (!json_is_string(v))
        return api_fail(e, 400, key, "'%s' must be a string, not %s", key, type_name(v));
    *out = json_string_value(v);
    return 0;
}

/* size: the model's own "SxS" (or "auto"). */
static int check_size(const server_t *s, const json_t *v, api_error_t *e)
{
    const char *size = NULL;
    if (get_string(v, "size", &size, e)) return -1;
    if (strcmp(size, s->size) == 0 || strcmp(size, "auto") == 0) return 0;
    return api_fail(e, 400, "size", "size '%.40s' is not offered: this model makes %s images",
                    size, s->size);
}

/* One field of the request. 0 when taken (or ignored), -1 with e set. */
static int take_field(const server_t *s, const char *key, const json_t *v, gen_request_t *r,
                      api_error_t *e)
{
    dalle_params_t *p = &r->params;
    long long x;
    const char *str = NULL;
    if (json_is_null(v) && strcmp(key, "prompt") != 0) return 0; /* null: not given */
    if (strcmp(key, "prompt") == 0) {
        char err[DALLE_ERR_SIZE];
        if (get_string(v, key, &str, e)) return -1;
        if (dalle_prompt_check(str, err)) return api_fail(e, 400, key, "%s", err);
        if (!(r->prompt = strdup(str))) return api_fail(e, 500, NULL, "out of memory");
        return 0;
    }
    if (strcmp(key, "n") == 0) {
        if (get_int(v, key, 1, SERVER_MAX_IMAGES, &x, e)) return -1;
        p->n_images = (int)x;
        return 0;
    }
    if (strcmp(key, "seed") == 0) {
        if (get_int(v, key, 0, INT64_MAX, &x, e)) return -1;
        p->seed = x;
        return 0;
    }
    if (strcmp(key, "temperature") == 0) return get_float(v, key, 0, 100, 0, &p->temperature, e);
    if (strcmp(key, "top_p") == 0) return get_float(v, key, 0, 1, 1, &p->top_p, e);
    if (strcmp(key, "guidance") == 0) return get_float(v, key, 0, 100, 0, &p->guidance, e);
    if (strcmp(key, "candidates") == 0) { /* with n: checked once every field is in */
        if (get_int(v, key, 1, DALLE_MAX_IMAGES, &x, e)) return -1;
        p->candidates = (int)x;
        return 0;
    }
    if (strcmp(key, "top_k") == 0) {
        if (get_int(v, key, 0, 1 << 24, &x, e)) return -1;
        p->top_k = (int)x;
        return 0;
    }
    if (strcmp(key, "stream") == 0) {
        if (!json_is_boolean(v))
            return api_fail(e, 400, key, "'stream' must be true or false, not %s", type_name(v));
        r->stream = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "size") == 0) return check_size(s, v, e);
    if (strcmp(key, "response_format") == 0) {
        if (get_string(v, key, &str, e)) return -1;
        if (strcmp(str, "b64_json") == 0) return 0;
        return api_fail(e, 400, key, "response_format '%.40s' is not offered: use b64_json (the "
                        "images come inside the reply; there are no URLs to fetch them from)", str);
    }
    if (strcmp(key, "output_format") == 0) {
        if (get_string(v, key, &str, e)) return -1;
        if (strcmp(str, "png") == 0) return 0;
        return api_fail(e, 400, key, "output_format '%.40s' is not offered: the images are PNG",
                        str);
    }
    /* OpenAI's fields that say nothing to this model: checked for their type, ignored.
     * model: any name (clients send their default); the reply names ours. */
    static const char *const ignored[] = {"model", "user", "quality", "style", "background",
                                          "moderation", NULL};
    for (int i = 0; ignored[i]; i++)
        if (strcmp(key, ignored[i]) == 0) return get_string(v, key, &str, e);
    if (strcmp(key, "partial_images") == 0) /* every row is sent anyway */
        return get_int(v, key, 0, 3, &x, e);
    return api_fail(e, 400, key, "unknown field '%.40s' (docs/SERVER.md lists the fields)", key);
}

/* Reranking's limits, as the command line's --candidates: n x candidates samples in one
 * batch, and a scorer to rank them. */
static int check_candidates(const server_t *s, const dalle_params_t *p, api_error_t *e)
{
    const int n = p->n_images, m = p->candidates;
    if (n * m > DALLE_MAX_IMAGES)
        return api_fail(e, 400, "candidates", "'n' x 'candidates' is %d x %d = %d samples; at "
                        "most %d", n, m, n * m, DALLE_MAX_IMAGES);
    if (m > 1 && !s->info.has_scorer)
        return api_fail(e, 400, "candidates", "this model has no scorer, so 'candidates' above 1 "
                        "has nothing to rank the samples by (add one with `dalle-c rerank add`; "
                        "docs/RERANK.md)");
    return 0;
}

int api_parse_generation(const server_t *s, const char *body, size_t len, gen_request_t *out,
                         api_error_t *e)
{
    memset(out, 0, sizeof *out);
    out->params = dalle_model_params(s->model); /* fields not given: the model's settings */
    out->params.threads = s->opt.threads;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return api_fail(e, 400, NULL, "the body is not valid JSON: %s (line %d, column %d)",
                        jerr.text, jerr.line, jerr.column);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = api_fail(e, 400, NULL, "the body must be a JSON object, not %s", type_name(root));
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if ((rc = take_field(s, key, v, out, e))) break;
        }
        if (!rc && !out->prompt) rc = api_fail(e, 400, "prompt", "'prompt' is required");
        if (!rc) rc = check_candidates(s, &out->params, e);
        const json_t *t = json_object_get(root, "temperature");
        if (!rc && (!t || json_is_null(t)))
            out->params.temperature = dalle_model_temperature(s->model, out->params.candidates);
    }
    json_decref(root);
    if (rc) {
        gen_request_free(out);
        return -1;
    }
    if (out->params.seed < 0) out->params.seed = dalle_random_seed() & RANDOM_SEED_MASK;
    return 0;
}

/* ---------------------------------------------------------------- responses */

/* What a request gets for the sampling fields it leaves out: the model's recommended
 * settings (dalle_model_params), with the temperature for its number of candidates
 * (dalle_model_temperature: the model's candidate_temperature above 1). Every key is a
 * request field, so a client may send the object back. */
static json_t *defaults_object(const dalle_model_info_t *in, float temperature)
{
    json_t *d = json_object();
    if (put(d, "temperature", json_real(temperature)) ||
        put(d, "top_k", json_integer(in->sample.top_k)) ||
        put(d, "top_p", json_real(in->sample.top_p)) ||
        put(d, "guidance", json_real(in->sample.guidance))) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static json_t *model_object(const server_t *s)
{
    json_t *m = json_object();
    const dalle_model_info_t *in = &s->info;
    int bad = put(m, "id", json_string(dalle_model_name(s->model))) ||
              put(m, "object", json_string("model")) || put(m, "created", json_integer(0)) ||
              put(m, "owned_by", json_string("dalle-c")) ||
              put(m, "size", json_string(s->size)) ||
              put(m, "grid", json_integer(in->grid)) ||
              put(m, "text_tokens", json_integer(in->text_len)) ||
              put(m, "parameters", json_integer((json_int_t)in->n_params)) ||
              put(m, "max_images", json_integer(SERVER_MAX_IMAGES)) ||
              put(m, "scorer", json_boolean(in->has_scorer)) ||
              put(m, "defaults", defaults_object(in, in->sample.temperature)) ||
              (in->has_scorer &&
               put(m, "defaults_with_candidates",
                   defaults_object(in, in->sample.candidate_temperature))) ||
              put(m, "version", json_string(dalle_version()));
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

char *api_model_body(const server_t *s)
{
    return dump(model_object(s));
}

char *api_models_body(const server_t *s)
{
    json_t *root = json_object(), *list = json_array();
    int bad = !list || json_array_append_new(list, model_object(s)) ||
              put(root, "object", json_string("list")) || put(root, "data", json_incref(list));
    json_decref(list);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return dump(root);
}

static char *base64(const uint8_t *data, size_t n)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = digits[v >> 18];
        *o++ = digits[v >> 12 & 63];
        *o++ = digits[v >> 6 & 63];
        *o++ = digits[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = digits[v >> 18];
        *o++ = digits[v >> 12 & 63];
        *o++ = i + 1 < n ? digits[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

/* A PNG of img, base64, with the settings of image i (0-based) of j's result when
 * settings is set (the file the command line writes for it), else bare. */
static json_t *png_b64(const server_t *s, const job_t *j, const dalle_image_t *img, int i,
                       int settings, char err[DALLE_ERR_SIZE])
{
    dalle_settings_text_t t = {0};
    if (settings)
        dalle_settings_text(&t, &j->result, i + 1, j->req.prompt, dalle_model_name(s->model), NULL);
    uint8_t *png = NULL;
    size_t size = 0;
    if (dalle_image_encode_png(img, t.text, t.n_text, &png, &size, err)) return NULL;
    char *text = base64(png, size);
    free(png);
    json_t *v = text ? json_string_nocheck(text) : NULL;
    free(text);
    if (!v) snprintf(err, DALLE_ERR_SIZE, "out of memory");
    return v;
}

/* What every image carries besides its pixels: enough to make it again with the
 * command line (dalle-c PROMPT --seed SEED -n N, image INDEX+1 of the batch), and with a
 * scorer its score and, reranked, which candidate won (as the command line prints them). */
static int put_image_facts(json_t *o, const job_t *j, int i)
{
    const dalle_result_t *r = &j->result;
    return put(o, "seed", json_integer((json_int_t)r->seed)) ||
           put(o, "index", json_integer(i)) || put(o, "n", json_integer(r->n_images)) ||
           (r->scores && put(o, "score", json_real(r->scores[i]))) ||
           (r->params.candidates > 1 && put(o, "candidate", json_integer(r->candidate[i])));
}

char *api_images_body(const server_t *s, const job_t *j, api_error_t *e)
{
    char err[DALLE_ERR_SIZE] = "out of memory";
    const dalle_result_t *r = &j->result;
    json_t *root = json_object(), *data = json_array();
    int bad = !root || !data;
    for (int i = 0; i < r->n_images && !bad; i++) {
        json_t *item = json_object();
        bad = put_image_facts(item, j, i) ||
              put(item, "b64_json", png_b64(s, j, &r->images[i], i, 1, err));
        if (bad) json_decref(item);
        else bad = json_array_append_new(data, item) != 0; /* takes item even when failing */
    }
    if (!bad)
        bad = put(root, "created", json_integer(j->created)) ||
              put(root, "data", json_incref(data)) ||
              put(root, "model", json_string(dalle_model_name(s->model))) ||
              put(root, "size", json_string(s->size)) ||
              put(root, "seed", json_integer((json_int_t)r->seed)) ||
              put(root, "prompt_tokens", json_integer(r->prompt_tokens)) ||
              put(root, "prompt_tokens_read", json_integer(r->prompt_kept)) ||
              put(root, "seconds", json_real(r->seconds));
    json_decref(data);
    char *text = bad ? NULL : dump(root);
    if (bad) json_decref(root);
    if (!text) api_fail(e, 500, NULL, "cannot make the reply: %s", err);
    return text;
}

/* "event: NAME\ndata: JSON\n\n" with data = obj (released) */
static char *event(const char *name, json_t *obj)
{
    char *data = dump(obj);
    if (!data) return NULL;
    size_t n = strlen(name) + strlen(data) + 32;
    char *out = malloc(n);
    if (out) snprintf(out, n, "event: %s\ndata: %s\n\n", name, data);
    free(data);
    return out;
}

char *api_event_queued(const job_t *j, int ahead)
{
    json_t *o = json_object();
    if (put(o, "type", json_string("queued")) || put(o, "ahead", json_integer(ahead)) ||
        put(o, "seed", json_integer(j->req.params.seed))) {
        json_decref(o);
        return NULL;
    }
    return event("queued", o);
}

/* The fields OpenAI's image events share, and our progress figure. */
static int put_event_common(json_t *o, const server_t *s, const job_t *j, const char *type,
                            int i, double progress)
{
    return put(o, "type", json_string(type)) || put(o, "created_at", json_integer(j->created)) ||
           put(o, "size", json_string(s->size)) || put(o, "output_format", json_string("png")) ||
           put(o, "image_index", json_integer(i)) || put(o, "progress", json_real(progress));
}

char *api_event_partial(const server_t *s, const job_t *j, int k, const uint8_t *rgb, int rows)
{
    char err[DALLE_ERR_SIZE];
    const int S = s->info.image_size, G = s->info.grid, n = j->req.params.n_images;
    dalle_image_t img = {S, S, (uint8_t *)rgb};
    json_t *o = json_object();
    if (put_event_common(o, s, j, "image_generation.partial_image", k % n, (double)rows / G) ||
        (j->req.params.candidates > 1 && put(o, "candidate", json_integer(k / n))) ||
        put(o, "partial_image_index", json_integer(rows - 1)) ||
        put(o, "rows", json_integer(rows)) || put(o, "grid", json_integer(G)) ||
        put(o, "seed", json_integer(j->req.params.seed)) ||
        put(o, "b64_json", png_b64(s, j, &img, k, 0, err))) {
        json_decref(o);
        return NULL;
    }
    return event("image_generation.partial_image", o);
}

char *api_event_completed(const server_t *s, const job_t *j, int i)
{
    char err[DALLE_ERR_SIZE];
    json_t *o = json_object();
    if (put_event_common(o, s, j, "image_generation.completed", i, 1.0) ||
        put_image_facts(o, j, i) || put(o, "seconds", json_real(j->result.seconds)) ||
        put(o, "b64_json", png_b64(s, j, &j->result.images[i], i, 1, err))) {
        json_decref(o);
        return NULL;
    }
    return event("image_generation.completed", o);
}

char *api_event_error(const api_error_t *e)
{
    json_t *o = json_object();
    if (put(o, "type", json_string("error")) || put(o, "error", error_object(e))) {
        json_decref(o);
        return NULL;
    }
    return event("error", o);
}

void api_job_error(const job_t *j, api_error_t *e)
{
    if (j->status == JOB_STOPPED) {
        api_fail(e, 503, NULL, "the server is shutting down");
        e->code = "shutting_down";
    } else if (j->status == DALLE_CANCELLED) {
        api_fail(e, 499, NULL, "cancelled: the client went away");
    } else if (j->status == DALLE_EPROMPT || j->status == DALLE_EINVAL) {
        api_fail(e, 400, j->status == DALLE_EPROMPT ? "prompt" : NULL, "%s", j->err);
    } else {
        api_fail(e, 500, NULL, "generation failed: %s", j->err);
    }
}
