/* weights: the dalle-c model file (weights/FORMAT.md is the byte-level spec).
 *
 * One file holds a readable text config ("dvae.codebook = 512" lines), a directory of
 * named tensors (f32, f16 or bf16, row-major) and named blobs (the tokenizer model's
 * bytes), each stored as one zstd frame with zstd's content checksum. The directory,
 * the config and the fixed header carry CRC-32s, so every damaged byte is noticed.
 *
 * Writing streams: each tensor is converted and compressed as it is added (no second
 * copy of the model in memory) into PATH.tmp.PID.N beside PATH; closing writes the
 * directory, fsyncs, renames over PATH and fsyncs the directory, so a crash or a full
 * disk leaves the previous PATH intact. Checkpoints go through the same writer.
 *
 * Reading checks every length and offset against the file before use. Every function
 * that can fail returns a wf_status (WF_OK = 0) and fills err[WF_ERR_SIZE], when err is
 * not NULL, with one line "PATH: problem" (no trailing newline). Nothing here prints or
 * exits. Host byte order does not matter: the file is little-endian throughout.
 */
#ifndef DALLEC_WEIGHTS_H
#define DALLEC_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#define WF_ERR_SIZE 256
#define WF_MAX_DIMS 8
#define WF_MAX_NAME 255        /* tensor, blob and config key names: [A-Za-z0-9_.:/-]+ */
#define WF_MAX_KEY 127
#define WF_VERSION_MAJOR 1     /* refused when a file's major differs */
#define WF_VERSION_MINOR 0     /* newer minors are read, ignoring what they add */

typedef enum {
    WF_OK = 0,
    WF_EIO,        /* open/read/write/fsync/rename failed (errno text in the message) */
    WF_ENOMEM,
    WF_EFOREIGN,   /* not a dalle-c model file (wrong magic) */
    WF_EVERSION,   /* a format version this build cannot read */
    WF_ETRUNC,     /* shorter than its header says */
    WF_ECORRUPT,   /* a checksum, length, offset or field is wrong */
    WF_ENOTFOUND,  /* no tensor, blob or config key of that name */
    WF_ESHAPE,     /* a tensor exists with another shape, or a config value has another type */
    WF_EINVAL,     /* bad argument (name, dtype, shape, NULL) */
} wf_status;

typedef enum { WF_F32 = 0, WF_F16 = 1, WF_BF16 = 2 } wf_dtype;
typedef enum { WF_TENSOR = 0, WF_BLOB = 1 } wf_kind;

const char *wf_status_name(int status); /* "truncated", "corrupt", ... */
const char *wf_dtype_name(wf_dtype d);  /* "f32", "f16", "bf16" */
size_t wf_dtype_size(wf_dtype d);       /* 4, 2, 2 */

/* ---------------------------------------------------------------- conversions */

/* Round to nearest, ties to even, as PyTorch's .half() and .bfloat16(): f16 keeps
 * subnormals, overflows to +-inf at |x| >= 65520, and maps NaN to 0x7E00 with its sign;
 * bf16 maps NaN to 0x7FC0. The widening conversions are exact. */
uint16_t wf_f32_to_f16(float x);
uint16_t wf_f32_to_bf16(float x);
float wf_f16_to_f32(uint16_t h);
float wf_bf16_to_f32(uint16_t h);

/* ---------------------------------------------------------------- config */

/* Typed key/value pairs, kept in insertion order. Keys are "part.name"
 * ("dvae.codebook", "gpt.n_layer"): 1..WF_MAX_KEY chars of [A-Za-z0-9_.:/-]. */
typedef struct wf_config wf_config_t;
typedef enum { WF_CFG_INT = 0, WF_CFG_FLOAT = 1, WF_CFG_STR = 2 } wf_cfg_type;

wf_config_t *wf_config_create(void);
void wf_config_free(wf_config_t *c);
/* Setting an existing key replaces its value (and type). WF_EINVAL for a bad key or a
 * non-finite float (the text form has no inf/nan), WF_ENOMEM. Strings may hold any bytes
 * but NUL; they are stored escaped so the config stays printable ASCII. */
int wf_config_set_int(wf_config_t *c, const char *key, int64_t v);
int wf_config_set_float(wf_config_t *c, const char *key, double v);
int wf_config_set_str(wf_config_t *c, const char *key, const char *v);
/* WF_OK, WF_ENOTFOUND, or WF_ESHAPE when the key holds another type (get_float
 * accepts an int value). get_str's result lives as long as the config. */
int wf_config_get_int(const wf_config_t *c, const char *key, int64_t *out);
int wf_config_get_float(const wf_config_t *c, const char *key, double *out);
int wf_config_get_str(const wf_config_t *c, const char *key, const char **out);
/* Iteration for printing: entry i's key, type and value as written in the file
 * ("512", "0.0625", "\"sentencepiece\""). NULL when i is out of range. */
int wf_config_count(const wf_config_t *c);
const char *wf_config_key(const wf_config_t *c, int i);
wf_cfg_type wf_config_type(const wf_config_t *c, int i);
const char *wf_config_text(const wf_config_t *c, int i);

/* Sets entry i of src (key, type and value) in dst. WF_OK or the error. */
int wf_config_copy_entry(wf_config_t *dst, const wf_config_t *src, int i);

/* A struct's int and float fields stored under keys, by a table (key, offset in the
 * struct, 1 for a float field), so a model part's store and read cannot drift apart. */
typedef struct {
    const char *key;
    size_t offset;
    int is_float;
} wf_field_t;
/* Sets every field's key from struct s. WF_OK or the first error. */
int wf_config_store_fields(wf_config_t *c, const void *s, const wf_field_t *fields, size_t n);
/* Reads the keys into struct s, leaving a field whose key is absent as it is. Returns how
 * many keys were found, or -1 with err "PATH: config "KEY" has the wrong type or range". */
int wf_config_read_fields(const wf_config_t *c, void *s, const wf_field_t *fields, size_t n,
                          const char *path, char err[WF_ERR_SIZE]);

/* ---------------------------------------------------------------- writing */

typedef struct wf_writer wf_writer_t;

/* Starts writing PATH (through a temporary file beside it; PATH is untouched until
 * wf_writer_close succeeds). cfg is written now (NULL: empty config). level: zstd
 * level, 0 = WF_DEFAULT_LEVEL. */
#define WF_DEFAULT_LEVEL 3
int wf_writer_open(wf_writer_t **out, const char *path, const wf_config_t *cfg, int level,
                   char err[WF_ERR_SIZE]);
/* Adds tensor name of shape[ndim] from float32 data, stored as dtype (converted with
 * the rounding above). Names must be unique; the part before the first '.' ("dvae",
 * "gpt", "rerank") is the tensor's part. */
int wf_writer_add_tensor(wf_writer_t *w, const char *name, wf_dtype dtype, int ndim,
                         const int64_t *shape, const float *data, char err[WF_ERR_SIZE]);
/* The same from data already in dtype's representation: float for f32, uint16_t bit
 * patterns for f16/bf16 (host order); stored bit for bit. */
int wf_writer_add_raw(wf_writer_t *w, const char *name, wf_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, char err[WF_ERR_SIZE]);
int wf_writer_add_blob(wf_writer_t *w, const char *name, const void *data, size_t size,
                       char err[WF_ERR_SIZE]);
/* Writes the directory and header, fsyncs, renames over PATH, fsyncs the directory,
 * and frees w. After any failure (here or in an earlier add) it removes the temporary
 * file, leaves PATH as it was and returns the first error. */
int wf_writer_close(wf_writer_t *w, char err[WF_ERR_SIZE]);
/* Gives up: removes the temporary file and frees w (NULL is fine). */
void wf_writer_abort(wf_writer_t *w);

/* ---------------------------------------------------------------- reading */

typedef struct wf_reader wf_reader_t;

typedef struct {
    const char *name;
    wf_kind kind;
    wf_dtype dtype;         /* tensors */
    int ndim;               /* tensors: 0..WF_MAX_DIMS; blobs 0 */
    int64_t shape[WF_MAX_DIMS];
    uint64_t numel;         /* tensors: product of shape */
    uint64_t raw_size;      /* bytes once decompressed (numel * dtype size for tensors) */
    uint64_t stored_size;   /* bytes of its zstd frame in the file */
    uint64_t offset;        /* where that frame starts */
} wf_entry_t;

/* Opens and validates the header, config and directory (not yet the tensor data; see
 * wf_reader_verify). Keeps the file open; memory use is the directory plus, while
 * loading, one tensor's compressed frame. */
int wf_reader_open(wf_reader_t **out, const char *path, char err[WF_ERR_SIZE]);
/* The same over a model file's bytes in memory (nothing is written anywhere): data is
 * not copied and must stay unchanged until wf_reader_close. name stands for the path in
 * messages and wf_reader_path. */
int wf_reader_open_mem(wf_reader_t **out, const void *data, size_t size, const char *name,
                       char err[WF_ERR_SIZE]);
void wf_reader_close(wf_reader_t *r);

const char *wf_reader_path(const wf_reader_t *r);
const wf_config_t *wf_reader_config(const wf_reader_t *r);
const char *wf_reader_config_text(const wf_reader_t *r);  /* as stored, NUL-terminated */
uint64_t wf_reader_file_size(const wf_reader_t *r);
void wf_reader_version(const wf_reader_t *r, int *major, int *minor);
int wf_reader_count(const wf_reader_t *r);
const wf_entry_t *wf_reader_entry(const wf_reader_t *r, int i);       /* file order */
const wf_entry_t *wf_reader_find(const wf_reader_t *r, const char *name); /* NULL: none */

/* Loads tensor name into dst as float32 after checking that it exists with exactly
 * shape[ndim]; dst holds the product of shape floats. */
int wf_reader_load(wf_reader_t *r, const char *name, int ndim, const int64_t *shape,
                   float *dst, char err[WF_ERR_SIZE]);
/* Loads entry e (a tensor) into dst, which holds e->numel floats. */
int wf_reader_load_entry(wf_reader_t *r, const wf_entry_t *e, float *dst,
                         char err[WF_ERR_SIZE]);
/* Entry e's decompressed bytes as stored (f16/bf16 bit patterns, blob bytes) into dst,
 * which holds e->raw_size bytes; tensor elements come out in host byte order. */
int wf_reader_load_raw(wf_reader_t *r, const wf_entry_t *e, void *dst, char err[WF_ERR_SIZE]);
/* Blob name in a new malloc'd buffer of *size bytes plus a NUL (caller frees). */
int wf_reader_blob(wf_reader_t *r, const char *name, void **data, size_t *size,
                   char err[WF_ERR_SIZE]);
/* Decompresses every entry and checks every checksum, in bounded memory. */
int wf_reader_verify(wf_reader_t *r, char err[WF_ERR_SIZE]);

#endif
