/* spm_check: see spm_check.h. A read-only walk of the protobuf wire format (varints,
 * length-delimited fields, fixed 32/64-bit fields, groups), the Darts double-array
 * walk libsentencepiece's normaliser does, and a prefix count over the user-defined
 * symbols. */
#include "tokenizer/spm_check.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_ERROR "not a SentencePiece model: its bytes do not parse as a ModelProto"
#define MAX_GROUP_DEPTH 100 /* protobuf's own recursion limit */

static int fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, 256, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---------------------------------------------------------------- wire format */

typedef struct {
    const unsigned char *p, *end;
} span_t;

typedef struct {
    uint32_t number;
    int wire;       /* 0 varint, 1 fixed64, 2 length-delimited, 3/4 group, 5 fixed32 */
    uint64_t value; /* wire 0 */
    span_t bytes;   /* wire 2 */
} field_t;

static int read_varint(span_t *s, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (s->p >= s->end) return -1;
        unsigned c = *s->p++;
        r |= (uint64_t)(c & 0x7F) << shift;
        if (c < 0x80) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static int read_field(span_t *s, field_t *f, int depth);

/* Skips a group's fields up to its end tag (same field number). */
static int skip_group(span_t *s, uint32_t number, int depth)
{
    if (depth > MAX_GROUP_DEPTH) return -1;
    for (;;) {
        field_t f;
        if (s->p >= s->end || read_field(s, &f, depth + 1)) return -1;
        if (f.wire == 4) return f.number == number ? 0 : -1;
    }
}

/* The next field of s; its payload is consumed (skipped, or in f->value / f->bytes). */
static int read_field(span_t *s, field_t *f, int depth)
{
    uint64_t tag, len;
    if (read_varint(s, &tag) || tag > UINT32_MAX || (tag >> 3) == 0) return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    switch (f->wire) {
    case 0: return read_varint(s, &f->value);
    case 1:
    case 5: {
        size_t k = f->wire == 1 ? 8 : 4;
        if ((size_t)(s->end - s->p) < k) return -1;
        s->p += k;
        return 0;
    }
    case 2:
        if (read_varint(s, &len) || len > (uint64_t)(s->end - s->p)) return -1;
        f->bytes = (span_t){s->p, s->p + len};
        s->p += len;
        return 0;
    case 3: return skip_group(s, f->number, depth);
    case 4: return 0; /* the caller's group ends */
    default: return -1;
    }
}

/* ---------------------------------------------------------------- pieces */

typedef struct {
    const unsigned char *s;
    size_t n;
} sym_t;

typedef struct {
    sym_t *v;
    size_t n, cap;
} syms_t;

enum { PIECE_USER_DEFINED = 4 };

/* One SentencePiece message: its length, and its string when it is a user-defined
 * symbol (singular fields: the last occurrence counts, as protobuf parses them). */
static int check_piece(span_t s, long index, syms_t *users, char *err)
{
    span_t piece = {NULL, NULL};
    uint64_t type = 1; /* NORMAL */
    while (s.p < s.end) {
        field_t f;
        if (read_field(&s, &f, 0) || f.wire == 4) return fail(err, PARSE_ERROR);
        if (f.number == 1 && f.wire == 2) {
            size_t len = (size_t)(f.bytes.end - f.bytes.p);
            if (len > SPM_MAX_PIECE_BYTES)
                return fail(err, "SentencePiece model refused: piece %ld is %zu bytes long "
                                 "(at most %d)", index, len, SPM_MAX_PIECE_BYTES);
            piece = f.bytes;
        } else if (f.number == 3 && f.wire == 0 && f.value >= 1 && f.value <= 6) {
            type = f.value; /* an unknown enum value leaves the field as it was */
        }
    }
    if (type != PIECE_USER_DEFINED || !piece.p) return 0;
    /* PrefixMatcher keys are C strings: a NUL ends the symbol */
    const unsigned char *nul = memchr(piece.p, 0, (size_t)(piece.end - piece.p));
    size_t n = (size_t)((nul ? nul : piece.end) - piece.p);
    if (n == 0) return 0;
    if (users->n == users->cap) {
        size_t cap = users->cap ? 2 * users->cap : 64;
        sym_t *v = realloc(users->v, cap * sizeof *v);
        if (!v) return fail(err, "SentencePiece model: out of memory");
        users->v = v, users->cap = cap;
    }
    users->v[users->n++] = (sym_t){piece.p, n};
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    const sym_t *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* The most symbols that are prefixes of one another: in sorted order the prefixes of a
 * key among the keys before it form a chain, kept on a stack. */
static size_t deepest_prefix_chain(syms_t *k)
{
    qsort(k->v, k->n, sizeof *k->v, cmp_key);
    size_t depth = 0, deepest = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (i > 0 && cmp_key(&k->v[i - 1], &k->v[i]) == 0) continue;
        while (depth > 0) {
            const sym_t *top = &k->v[depth - 1], *cur = &k->v[i];
            if (top->n <= cur->n && memcmp(top->s, cur->s, top->n) == 0) break;
            depth--;
        }
        k->v[depth++] = k->v[i]; /* depth <= i: overwrites only keys already passed */
        if (depth > deepest) deepest = depth;
    }
    return deepest;
}

/* ---------------------------------------------------------------- normaliser trie */

/* A Darts-clone unit (darts.h, DoubleArrayUnit). */
static uint32_t unit_at(const unsigned char *units, size_t i)
{
    const unsigned char *p = units + 4 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t unit_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static uint32_t unit_label(uint32_t u) { return u & 0x800000FFu; }
static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

typedef struct {
    uint32_t pos;   /* node position after its offset: children sit at pos ^ byte */
    uint16_t next;  /* the next byte to try, 0..256 */
    uint8_t leaf;   /* the edge to the child being walked passes a leaf */
} trie_frame_t;

enum { NODE_NEW = 0, NODE_OPEN = 1, NODE_DONE = 2 };

/* precompiled_charsmap = u32 trie_bytes, the trie's units, then the NUL-separated
 * replacement strings a leaf value indexes. commonPrefixSearch reads unit pos ^ c for
 * any input byte c at every node it reaches, so every reachable node's whole block of
 * 256 must lie inside the trie; a leaf's value must start a NUL-terminated string of
 * the replacements; and no path may pass more than 32 leaves. Darts-clone shares equal
 * subtrees (it builds a DAWG), so the walk is a depth-first search over a DAG that
 * visits each node once, keeps for each the most leaves on a path below it, and refuses
 * a cycle (no builder writes one). */
static int check_charsmap(span_t blob, const char *what, char *err)
{
    size_t size = (size_t)(blob.end - blob.p);
    if (size <= 4) return 0; /* libsentencepiece refuses these itself */
    size_t trie_bytes = unit_at(blob.p, 0);
    if (trie_bytes >= size) return 0; /* likewise */
#define DAMAGED(why) fail(err, "SentencePiece model refused: its %s rules (precompiled_charsmap) " \
                               "are damaged: %s", what, why)
    /* libsentencepiece's own test (trie_bytes < size) forgets the 4 bytes of the length
     * itself: a trie 1 to 3 bytes longer than what follows them is read past the end */
    if (trie_bytes > size - 4) return DAMAGED("the trie is longer than the blob");
    const unsigned char *units = blob.p + 4, *text = blob.p + 4 + trie_bytes;
    size_t n = trie_bytes / 4, text_len = size - 4 - trie_bytes;
    long last_nul = -1;
    for (size_t j = text_len; j > 0; j--)
        if (text[j - 1] == 0) {
            last_nul = (long)(j - 1);
            break;
        }
    if (n == 0) return DAMAGED("the trie is empty");
    uint32_t root = unit_offset(unit_at(units, 0));
    if ((root | 0xFFu) >= n) return DAMAGED("a node's children lie outside the trie");
    unsigned char *state = calloc(n, 1), *below = calloc(n, 1); /* below: leaves, capped */
    trie_frame_t *stack = malloc(n * sizeof *stack);
    if (!state || !below || !stack) {
        free(state), free(below), free(stack);
        return fail(err, "SentencePiece model: out of memory");
    }
    int rc = 0;
    size_t top = 0;
    state[root] = NODE_OPEN;
    stack[top++] = (trie_frame_t){root, 0, 0};
    while (rc == 0 && top > 0) {
        trie_frame_t *fr = &stack[top - 1];
        if (fr->next == 256) { /* every child done: report to the parent */
            uint32_t done = fr->pos;
            state[done] = NODE_DONE;
            if (--top > 0) {
                trie_frame_t *up = &stack[top - 1];
                unsigned hits = up->leaf + below[done];
                if (hits > below[up->pos]) below[up->pos] = (unsigned char)hits;
                if (hits > SPM_MAX_CHARSMAP_MATCHES) rc = DAMAGED("more than 32 rules share a prefix");
            }
            continue;
        }
        uint32_t c = fr->next++, q = fr->pos ^ c, u = unit_at(units, q);
        if (unit_label(u) != c) continue;
        uint32_t child = q ^ unit_offset(u);
        int leaf = unit_has_leaf(u);
        if (leaf && child >= n) rc = DAMAGED("a rule's value lies outside the trie");
        else if (leaf && (long)unit_value(unit_at(units, child)) > last_nul)
            rc = DAMAGED("a rule's replacement lies outside the replacement strings");
        else if ((child | 0xFFu) >= n) rc = DAMAGED("a node's children lie outside the trie");
        else if (state[child] == NODE_OPEN) rc = DAMAGED("its trie has a cycle");
        else if (state[child] == NODE_DONE) {
            unsigned hits = (unsigned)leaf + below[child];
            if (hits > below[fr->pos]) below[fr->pos] = (unsigned char)hits;
            if (hits > SPM_MAX_CHARSMAP_MATCHES) rc = DAMAGED("more than 32 rules share a prefix");
        } else {
            fr->leaf = (uint8_t)leaf;
            state[child] = NODE_OPEN;
            stack[top++] = (trie_frame_t){child, 0, 0};
        }
    }
#undef DAMAGED
    free(state), free(below), free(stack);
    return rc;
}

/* A NormalizerSpec: every precompiled_charsmap in it (the last one counts, all are
 * checked). */
static int check_normalizer(span_t s, const char *what, char *err)
{
    while (s.p < s.end) {
        field_t f;
        if (read_field(&s, &f, 0) || f.wire == 4) return fail(err, PARSE_ERROR);
        if (f.number == 2 && f.wire == 2 && check_charsmap(f.bytes, what, err)) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the model */

int spm_check_model(const void *bytes, size_t n, char err[256])
{
    span_t s = {bytes, (const unsigned char *)bytes + n};
    syms_t users = {NULL, 0, 0};
    long pieces = 0;
    int rc = 0;
    while (rc == 0 && s.p < s.end) {
        field_t f;
        if (read_field(&s, &f, 0) || f.wire == 4) rc = fail(err, PARSE_ERROR);
        else if (f.number == 1 && f.wire == 2) rc = check_piece(f.bytes, pieces++, &users, err);
        else if (f.number == 3 && f.wire == 2) rc = check_normalizer(f.bytes, "normalizer", err);
        else if (f.number == 5 && f.wire == 2) rc = check_normalizer(f.bytes, "denormalizer", err);
    }
    if (rc == 0 && users.n > SPM_MAX_NESTED_SYMBOLS) {
        size_t deepest = deepest_prefix_chain(&users);
        if (deepest > SPM_MAX_NESTED_SYMBOLS)
            rc = fail(err, "SentencePiece model refused: %zu user-defined symbols are prefixes of "
                           "one another (at most %d)", deepest, SPM_MAX_NESTED_SYMBOLS);
    }
    free(users.v);
    return rc;
}
