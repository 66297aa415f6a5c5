/* Model files: wf_reader_open_mem, then everything a loader does with every entry
 * (config, tensors as f32 and raw, blobs, verify). A refusal must be one line starting
 * with the file's name. */
#include "tests/fuzz/fuzz.h"
#include "weights/weights.h"

#define NAME "fuzz.dalle"
#define MAX_RAW (64u << 20) /* skip loading entries that claim more (memory, not safety) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wf_reader_t *r;
    char err[WF_ERR_SIZE] = "";
    if (wf_reader_open_mem(&r, data, size, NAME, err) != WF_OK) {
        fuzz_check_message(err, NAME);
        return 0;
    }
    const wf_config_t *c = wf_reader_config(r);
    for (int i = 0; i < wf_config_count(c); i++) {
        const char *k = wf_config_key(c, i), *t = wf_config_text(c, i);
        if (!k || !t) fuzz_fail("config entry %d has no key or text", i);
        int64_t iv;
        double dv;
        const char *sv;
        wf_config_get_int(c, k, &iv);
        wf_config_get_float(c, k, &dv);
        wf_config_get_str(c, k, &sv);
    }
    (void)strlen(wf_reader_config_text(r));
    for (int i = 0; i < wf_reader_count(r); i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        if (!e || wf_reader_find(r, e->name) == NULL) fuzz_fail("entry %d cannot be found by name", i);
        if (e->raw_size > MAX_RAW) continue;
        void *raw = malloc(e->raw_size ? e->raw_size : 1);
        if (!raw) continue;
        err[0] = 0;
        if (wf_reader_load_raw(r, e, raw, err) != WF_OK) fuzz_check_message(err, NAME);
        free(raw);
        if (e->kind == WF_TENSOR) {
            float *f = malloc(e->numel ? e->numel * sizeof *f : 1);
            if (!f) continue;
            err[0] = 0;
            if (wf_reader_load_entry(r, e, f, err) != WF_OK) fuzz_check_message(err, NAME);
            free(f);
        } else {
            void *b;
            size_t n;
            err[0] = 0;
            if (wf_reader_blob(r, e->name, &b, &n, err) == WF_OK) free(b);
            else fuzz_check_message(err, NAME);
        }
    }
    err[0] = 0;
    if (wf_reader_verify(r, err) != WF_OK) fuzz_check_message(err, NAME);
    wf_reader_close(r);
    return 0;
}
