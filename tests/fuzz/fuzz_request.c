/* dalle-c serve's request bodies: any bytes as the body of POST /v1/images/generations
 * through api_parse_generation (server/api.c, jansson underneath), for a model that
 * makes 16x16 images. Built when the server is (tests/fuzz/CMakeLists.txt).
 *
 * Promises: a refused body gets a 400 (500 only when out of memory) whose error body is
 * JSON in OpenAI's shape with a one-line message; an accepted one holds a valid prompt
 * and settings dalle_params_check passes, n in 1..SERVER_MAX_IMAGES, and a seed. */
#include "server/server_internal.h"
#include "tests/fuzz/fuzz.h"

#include <jansson.h>

static void check_error_body(const api_error_t *e)
{
    if (e->status != 400 && e->status != 500) fuzz_fail("a refusal with status %d", e->status);
    if (!e->message[0] || strchr(e->message, '\n')) fuzz_fail("message \"%s\"", e->message);
    char *body = api_error_body(e);
    if (!body) fuzz_fail("no error body for \"%s\"", e->message);
    json_error_t je;
    json_t *v = json_loads(body, 0, &je);
    json_t *err = json_object_get(v, "error");
    if (!json_is_string(json_object_get(err, "message")) ||
        !json_is_string(json_object_get(err, "type")))
        fuzz_fail("error body not in OpenAI's shape: %s", body);
    json_decref(v);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static server_t s;
    if (!s.size[0]) {
        s.opt = server_options_default();
        s.info.image_size = 16;
        s.info.grid = 4;
        snprintf(s.size, sizeof s.size, "16x16");
    }
    gen_request_t req;
    api_error_t e;
    if (api_parse_generation(&s, (const char *)data, size, &req, &e)) {
        check_error_body(&e);
        return 0;
    }
    char err[DALLE_ERR_SIZE];
    if (!req.prompt || dalle_prompt_check(req.prompt, err)) fuzz_fail("accepted a bad prompt");
    if (dalle_params_check(&req.params, err)) fuzz_fail("accepted settings: %s", err);
    if (req.params.n_images < 1 || req.params.n_images > SERVER_MAX_IMAGES || req.params.seed < 0)
        fuzz_fail("accepted n %d, seed %lld", req.params.n_images, (long long)req.params.seed);
    gen_request_free(&req);
    return 0;
}
