/* data: images in and out, the synthetic shapes set and its evaluator, and the dataset
 * reader built on them.
 *
 * Errors follow the project's convention: functions return 0 or a negative IMG_E*
 * code and, when err is not NULL, fill it with a message that names the file (or the
 * display name given for a buffer) and the problem, e.g.
 *   "cat.png: truncated PNG (libpng: unexpected end of data)".
 * Nothing here prints, exits or keeps global state; every function may be called from
 * several threads at once on different images.
 */
#ifndef DALLEC_DATA_H
#define DALLEC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

/* ================================================================ images (img_) */

/* An 8-bit RGB image: rgb holds h rows of w pixels, each 3 bytes R, G, B, with no
 * padding (byte (y*w + x)*3 + c). The struct is the caller's; the pixels belong to it
 * once a function below has filled it, and img_deinit() releases them. */
typedef struct {
    int w, h;
    uint8_t *rgb;
} img_t;

/* A text chunk: key (1-79 printable ASCII characters, no leading, trailing or double
 * spaces, as PNG requires) and a UTF-8 value. */
typedef struct {
    const char *key;
    const char *value;
} img_text_t;

enum {
    IMG_OK = 0,
    IMG_EIO = -1,       /* cannot open, read, write, sync or rename */
    IMG_EFORMAT = -2,   /* not PNG or JPEG, or a kind of them we refuse (CMYK JPEG) */
    IMG_ECORRUPT = -3,  /* truncated or damaged file */
    IMG_ETOOBIG = -4,   /* more than IMG_MAX_SIDE per side or IMG_MAX_PIXELS in all */
    IMG_ENOMEM = -5,
    IMG_EINVAL = -6,    /* bad argument: size, text key, non-UTF-8 value, ... */
};

/* Images larger than this are refused from the header, before any pixel memory is
 * allocated. */
#define IMG_MAX_SIDE 16384
#define IMG_MAX_PIXELS (64L * 1024 * 1024)

/* Allocates a w x h image, all black. */
int img_init(img_t *img, int w, int h, char err[256]);
/* Frees the pixels and zeroes the struct; safe on a zeroed or already freed image. */
void img_deinit(img_t *img);

/* Reads a PNG or JPEG, recognised by its first bytes (not its name), into *img as
 * 8-bit RGB.
 * PNG: every colour type and bit depth (1-16), palettes with or without tRNS,
 *   interlaced or not. Alpha (an alpha channel or tRNS) is composited on white,
 *   out = round(a*c + (1-a)*255) with a and c in [0,1] at the file's full precision;
 *   16-bit samples are rounded to 8 bits. gAMA/iCCP are ignored (values as stored).
 * JPEG: grayscale and YCbCr/RGB, baseline or progressive. CMYK/YCCK are refused.
 *   A JPEG that ends early or whose entropy-coded data is damaged is an error
 *   (libjpeg would only warn and fill the rest with grey).
 * On error *img is left zeroed. */
int img_load(img_t *img, const char *path, char err[256]);
/* The same from a buffer; name is used in messages only. */
int img_load_mem(img_t *img, const void *data, size_t size, const char *name, char err[256]);

/* Encodes img as an 8-bit RGB PNG with n_text text chunks (text may be NULL when
 * n_text is 0). A value that is plain ASCII goes into tEXt, anything else into iTXt
 * (UTF-8); values over 512 bytes are zlib-compressed (zTXt / compressed iTXt). Keys and
 * values are checked first (a bad one is IMG_EINVAL). *out is malloc'ed; free() it.
 * name is used in messages only. */
int img_encode_png(const img_t *img, const img_text_t *text, int n_text, uint8_t **out,
                   size_t *out_size, const char *name, char err[256]);
/* img_encode_png() written atomically to path: a temporary file in the same
 * directory, written, fsync'ed and closed with every step checked, then renamed over
 * path. On any failure (a full disk included) the temporary file is removed and path
 * is left as it was. */
int img_save_png(const img_t *img, const char *path, const img_text_t *text, int n_text,
                 char err[256]);

/* Reads the tEXt, zTXt and iTXt chunks of a PNG, before and after the image data, in
 * file order. Values come back as UTF-8 (tEXt/zTXt are Latin-1 and converted).
 * *text is one malloc'ed block holding the array and all strings: free(*text) once.
 * *n_text may be 0 (and *text NULL). A JPEG or other file is IMG_EFORMAT. */
int img_load_text(const char *path, img_text_t **text, int *n_text, char err[256]);
/* The value of the first chunk with this key, or NULL. */
const char *img_text_get(const img_text_t *text, int n_text, const char *key);

/* Makes an S x S image from src, as torchvision's Resize(S) + CenterCrop(S): scale so
 * the shorter side is S (the longer becomes floor(long*S/short)), then keep the centre
 * S x S (offset floor((len - S)/2)). Each axis is resampled on its own: an axis that
 * shrinks uses the exact box filter (output pixel i averages the input interval
 * [i*n/m, (i+1)*n/m) with fractional coverage at the ends, which for integer factors
 * is PyTorch's area / adaptive_avg_pool); an axis that grows uses bilinear
 * interpolation (align_corners=False, edges clamped); an axis that keeps its size is
 * copied. So an S x S input comes back unchanged and a 2S x 2S input gives exact 2x2
 * block means. Sums are kept in float between the passes and rounded once. dst must
 * not be src. */
int img_resize_crop(img_t *dst, const img_t *src, int S, char err[256]);

/* Pixels to floats in [-1, 1], x/127.5 - 1, planar: channel c of pixel (y, x) goes to
 * out[c*plane_stride + y*w + x]. plane_stride = w*h gives CHW; for a batch in nn's
 * CNHW layout [3, B, h, w] pass B*w*h and out + b*w*h. */
void img_to_planar(const img_t *img, float *out, size_t plane_stride);
/* The inverse, into an image already of the right size: round((x+1)*127.5) clamped to
 * [0, 255]; NaN becomes 0. */
void img_from_planar(img_t *img, const float *in, size_t plane_stride);

/* Tiles n images of one size into a grid of cols columns (cols <= 0: ceil(sqrt(n))),
 * in row-major order, with pad pixels of white between and around the tiles (as
 * torchvision's make_grid). Unused cells stay white. */
int img_grid(img_t *dst, const img_t *tiles, int n, int cols, int pad, char err[256]);

/* ================================================================ shapes (shapes_)
 *
 * A synthetic captioned set with exact ground truth, and an evaluator that judges any
 * image (ours or a model's) against a prompt in the same grammar.
 *
 * Scenes: one object at a 3x3 grid position with a size (small or large), or two
 * objects in a relation (above, below, left of, right of; both of the one "medium"
 * size), on a plain background. Object sizes are fractions of the image side S chosen
 * so shapes stay recognisable at the dVAE's smallest S = 32 (see data/README.md):
 *   S >= 48: small 0.24 S, large 0.40 S, pair objects 0.34 S
 *   S <  48: small 0.34 S, large 0.50 S, pair objects 0.40 S
 * Shapes are drawn anti-aliased (4x4 supersampling) from exact geometry, so the same
 * scene gives the same pixels on every machine (no libm calls in the renderer). */

enum { SHAPES_N_SHAPES = 8, SHAPES_N_COLOURS = 10, SHAPES_N_BACKGROUNDS = 3, SHAPES_N_POS = 9 };
enum { SHAPES_SMALL = 0, SHAPES_LARGE = 1, SHAPES_MEDIUM = 2 };
enum { SHAPES_ABOVE = 0, SHAPES_BELOW = 1, SHAPES_LEFT_OF = 2, SHAPES_RIGHT_OF = 3 };

/* Names, indexable by the fields below: shapes "circle" "square" "triangle" "star"
 * "heart" "cross" "ring" "diamond"; colours "red" "green" "blue" "yellow" "orange"
 * "purple" "pink" "cyan" "brown" "black"; backgrounds "white" "gray" "beige";
 * positions "top left" "top" "top right" "left" "center" "right" "bottom left" "bottom"
 * "bottom right" (row*3 + column); relations "above" "below" "left of" "right of". */
extern const char *const shapes_shape_names[SHAPES_N_SHAPES];
extern const char *const shapes_colour_names[SHAPES_N_COLOURS];
extern const char *const shapes_background_names[SHAPES_N_BACKGROUNDS];
extern const char *const shapes_pos_names[SHAPES_N_POS];
extern const char *const shapes_relation_names[4];
/* RGB of each colour and background. */
extern const uint8_t shapes_colour_rgb[SHAPES_N_COLOURS][3];
extern const uint8_t shapes_background_rgb[SHAPES_N_BACKGROUNDS][3];

/* An object. From the generator every field is set; from a parsed prompt a field the
 * prompt does not name is -1. Geometry: the shape fills the box [x, x+w) x [y, y+h) in
 * pixels (exactly, touching all four sides). */
typedef struct {
    int colour, shape, size, pos;
    float x, y, w, h;
} shapes_object_t;

/* A scene: n = 1 or 2 objects; with two, "obj[0] RELATION obj[1]". */
typedef struct {
    int n;
    shapes_object_t obj[2];
    int relation;   /* n == 2; -1 when not said */
    int background; /* -1 when not said */
} shapes_scene_t;

/* Draws a random scene for an S x S image (S >= 16): half one-object, half two-object
 * scenes, every object colour at least 100 (RGB distance) from the background, two
 * objects never overlapping. Everything comes from rng. */
void shapes_scene_random(shapes_scene_t *sc, int S, nn_rng_t *rng);
/* Renders sc into *img (allocated here, S x S; img_deinit() it). */
int shapes_render(img_t *img, const shapes_scene_t *sc, int S, char err[256]);
/* Every caption phrasing of sc, one per line (each ends in '\n'), into buf; the first
 * line is the complete one ("a small red circle at the top left on a white
 * background", "a red circle above a blue square on a gray background"). Returns the
 * length written (truncated to n-1 when buf is too small), or the length needed. */
size_t shapes_captions(const shapes_scene_t *sc, char *buf, size_t n);
/* The scene as one line of the manifest (tab-separated, documented in data/README.md). */
size_t shapes_scene_format(const shapes_scene_t *sc, char *buf, size_t n);

/* Reads a prompt in the captions' grammar (any phrasing the generator writes, case and
 * punctuation ignored, "centre"/"middle", "grey", "upper"/"lower", "to the left of"
 * are accepted). Unnamed attributes come back -1. An error (IMG_EINVAL) when the
 * prompt names no object, or more than two. */
int shapes_parse(shapes_scene_t *sc, const char *prompt, char err[256]);

/* Holdout SPEC: comma-separated items, each "COLOUR SHAPE", "COLOUR" or "SHAPE"
 * (e.g. "green triangle,red star,heart"). */
typedef struct {
    int n;
    int colour[64], shape[64]; /* -1 = any */
} shapes_holdout_t;
int shapes_holdout_parse(shapes_holdout_t *h, const char *spec, char err[256]);
/* True when some object of sc matches an item of h. */
int shapes_holdout_match(const shapes_holdout_t *h, const shapes_scene_t *sc);

/* The evaluator's verdict on one image and prompt. Attributes: */
enum {
    SHAPES_ATTR_COLOUR, SHAPES_ATTR_SHAPE, SHAPES_ATTR_SIZE, SHAPES_ATTR_POSITION,
    SHAPES_ATTR_RELATION, SHAPES_ATTR_BACKGROUND, SHAPES_N_ATTR
};
extern const char *const shapes_attr_names[SHAPES_N_ATTR];
typedef struct {
    int checked[SHAPES_N_ATTR]; /* checks made per attribute (colour and shape: one per object) */
    int correct[SHAPES_N_ATTR];
    int objects_found;          /* separate objects seen in the image */
    shapes_scene_t seen;        /* what was read from the image, matched to the prompt's objects */
} shapes_verdict_t;

/* Judges img (any size >= 16, square or not) against a parsed prompt: finds the
 * background (the commonest colour on the border) and the objects (pixels that differ
 * from it, as connected regions; split by colour or position when a two-object prompt
 * sees one region), then for each named object: colour = the palette colour that best
 * explains its pixels as a blend with the background; shape = the nearest of the shape
 * templates drawn into the object's bounding box; size = bounding box against the
 * midpoint of the small/large sizes; position = the grid third its box centre falls in;
 * relation = the centres' offset along the relation's axis, larger than along the
 * other. Objects are matched to the prompt's in the order that agrees best. */
int shapes_evaluate(const img_t *img, const shapes_scene_t *want, shapes_verdict_t *v,
                    char err[256]);

/* `dalle-c data shapes`: writes cfg->count scenes as OUT_DIR/NNNNNN.png (text chunks
 * "caption" and "scene") with NNNNNN.txt (every phrasing, one a line), plus
 * OUT_DIR/manifest.tsv (one shapes_scene_format line per image) and, with a holdout,
 * OUT_DIR/holdout_prompts.txt (test prompts naming held-out combinations; no image
 * shares its name, so dataset readers never take it for a caption). Scene i depends
 * only on (seed, i): the same config gives byte-identical files with any thread count.
 * progress (may be NULL) is called from the calling thread with the images done. */
typedef struct {
    long count;          /* images (default 1000) */
    uint64_t seed;       /* default 1 */
    int size;            /* S (default 64) */
    const char *holdout; /* SPEC, or NULL */
    int holdout_prompts; /* test prompts per holdout item (default 20) */
} shapes_config_t;
shapes_config_t shapes_config_default(void);
typedef void (*data_progress_fn)(void *ctx, long done, long total);
int shapes_write_dataset(const char *out_dir, const shapes_config_t *cfg,
                         data_progress_fn progress, void *ctx, char err[256]);

/* ================================================================ datasets (ds_)
 *
 * An image folder with sidecar captions, as both trainings read it:
 * - images: *.png, *.jpg, *.jpeg (any case) found recursively (hidden files and folders
 *   skipped), in byte order of their path relative to the root, so indices are stable;
 * - captions: NAME.txt beside NAME.png, one caption a line (blank lines ignored); one is
 *   drawn per epoch. Images without captions have none (the dVAE needs none) unless
 *   require_captions drops them;
 * - split: an image is held out when the FNV-1a 64 hash of its relative path, as a
 *   fraction of 2^64, is below holdout: stable across runs, machines and added files;
 * - bad images: an image that fails to decode is skipped (replaced in the batch by the
 *   next good one), counted, and its name and error kept (ds_bad).
 * A ds_t is read-only after ds_open except for the bad-image record, which is locked:
 * ds_load, ds_batch_fill and ds_caption may run on several threads at once (e.g. a
 * prefetch thread filling the next batch while the training step runs), each with its
 * own output buffer. */
typedef struct ds ds_t;
enum { DS_TRAIN = 0, DS_HELDOUT = 1 };
enum { DS_NCHW = 0, DS_CNHW = 1 }; /* batch layouts: [B,3,S,S] or nn's [3,B,S,S] */

typedef struct {
    int size;             /* S: images are resized and centre-cropped to S x S (default 64) */
    double holdout;       /* fraction held out (default 0.05; 0 = none) */
    int require_captions; /* 1: images without a caption line are left out and counted */
} ds_config_t;
ds_config_t ds_config_default(void);

/* Scans dir. No image at all (or none left) is an error naming the folder. */
int ds_open(ds_t **ds, const char *dir, const ds_config_t *cfg, char err[256]);
void ds_close(ds_t *ds);

size_t ds_count(const ds_t *ds, int split);
/* Path relative to the root of item i of split. */
const char *ds_name(const ds_t *ds, int split, size_t i);
/* The folder given to ds_open (without trailing slashes). */
/* The S and the held-out fraction the dataset was opened with. */
int ds_image_size(const ds_t *ds);
double ds_holdout(const ds_t *ds);
const char *ds_root(const ds_t *ds);
/* Images left out at open for having no caption (with require_captions). */
size_t ds_uncaptioned(const ds_t *ds);
/* Caption lines of item i. */
int ds_caption_count(const ds_t *ds, int split, size_t i);
/* Caption line k (0-based) of item i, "" when there is none. */
const char *ds_caption_line(const ds_t *ds, int split, size_t i, int k);
/* The caption of item i for an epoch: a line drawn with nn_rng seeded from (seed,
 * epoch, the item's path), so it is the same in every run and on every thread; "" when
 * the item has none. The string lives as long as ds. */
const char *ds_caption(const ds_t *ds, int split, size_t i, uint64_t seed, uint64_t epoch);

/* Decodes item i, resizes and crops it to S x S, writes floats in [-1, 1] planar
 * (channel c at out + c*plane_stride, as img_to_planar). An undecodable image is an
 * error (recorded as bad; ds_batch_fill skips it). */
int ds_load(ds_t *ds, int split, size_t i, float *out, size_t plane_stride, char err[256]);
/* Fills a batch of n items idx[0..n) in parallel (OpenMP, threads <= 0: the default
 * team). A bad image is replaced by the next item of the split that decodes; when no
 * item decodes it fails. used (may be NULL) receives the item index actually loaded
 * for each slot. */
int ds_batch_fill(ds_t *ds, int split, const size_t *idx, int n, float *out, int layout,
                  size_t *used, int threads, char err[256]);
/* A permutation of the split's items for an epoch (Fisher-Yates with nn_rng seeded
 * from seed and epoch); perm holds ds_count(split) entries. */
void ds_epoch_order(const ds_t *ds, int split, uint64_t seed, uint64_t epoch, size_t *perm);
/* Decodes every image once (in parallel) so bad ones are found up front, and drops
 * them from the splits (item indices after it count good images only; call it before
 * anything else uses ds, not concurrently). progress may be NULL. Returns the number
 * of bad images. */
size_t ds_verify(ds_t *ds, data_progress_fn progress, void *ctx);
/* Bad images seen so far: count, and the k-th one's name and error. */
size_t ds_bad_count(ds_t *ds);
int ds_bad(ds_t *ds, size_t k, char name[512], char error[256]);

/* The FNV-1a 64 hash the split uses. */
uint64_t ds_hash(const char *s);

#endif
