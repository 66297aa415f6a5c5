/* The token cache (docs/TRAIN.md): every image of a dataset encoded once by the dVAE,
 * kept in a zstd-compressed file that later epochs and later runs reuse. Internal to
 * pipeline/; nothing here prints.
 *
 * The file is a weights/ model file (weights/FORMAT.md) holding
 *   config  cache.kind = "dalle-c token cache", cache.version = 1,
 *           cache.key = 16 hex digits, cache.count = N, cache.grid = G,
 *           cache.codebook = K, cache.image_size = S
 *   blob    cache.names   N relative image paths, each ended by a NUL, in byte order
 *   blob    cache.tokens  N x G*G int32 little-endian, row r the grid of name r
 *                         (row-major, as dvae_encode); an image that cannot be decoded
 *                         has a row of -1
 * The key is FNV-1a 64 over the dVAE's config and parameter bytes, S, and every image's
 * name, size and modification time: a changed dVAE or dataset gives a new key and the
 * cache is rebuilt. It does not depend on the train/held-out split. */
#ifndef DALLEC_TOKEN_CACHE_H
#define DALLEC_TOKEN_CACHE_H

#include "data/data.h"
#include "dvae/dvae.h"

#include <stdint.h>

typedef struct {
    int grid2;             /* G*G ints per row */
    size_t n[2];           /* rows per split (DS_TRAIN, DS_HELDOUT): ds_count */
    int *tokens[2];        /* [n[split], G*G]; row i is item i of the split; -1s: bad image */
    size_t bad;            /* images that could not be decoded (rows of -1) */
    uint64_t key;
    int rebuilt;           /* 1: encoded now; 0: read from the file */
    char why[256];         /* when rebuilt: why the file was not used ("no file", ...) */
} tcache_t;

/* The key of (dVAE, dataset) as described above. */
int tcache_key(const dvae_t *dv, const ds_t *ds, uint64_t *key, char err[256]);

/* Reads path when it holds this key, else encodes every image of ds with dv (batches
 * of up to dvae max_batch = batch images; progress called with images done) and writes
 * path atomically. 0, or -1 with err. tcache_free releases the rows. */
int tcache_open(tcache_t *c, const char *path, dvae_t *dv, int batch, ds_t *ds,
                data_progress_fn progress, void *ctx, char err[256]);
void tcache_free(tcache_t *c);

/* A row's validity. */
static inline int tcache_ok(const tcache_t *c, int split, size_t i)
{
    return c->tokens[split][i * (size_t)c->grid2] >= 0;
}

#endif
