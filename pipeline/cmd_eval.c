/* dalle-c eval shapes: prompt fidelity of images in the shapes grammar (data/data.h's
 * shapes_evaluate), per attribute and per prompt. */
#include "data/data.h"
#include "pipeline/commands.h"
#include "pipeline/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *eval_shapes_usage =
    "usage: dalle-c eval shapes IMAGE_DIR [--all-lines] [--misses | --quiet]\n"
    "\n"
    "Judges each image of IMAGE_DIR (searched recursively) against its prompt, the first\n"
    "line of the sidecar NAME.txt (the layout `dalle-c --prompts` and `dalle-c data\n"
    "shapes` write): whether each named object's colour, shape, size and position (or the\n"
    "two objects' relation) and the background are what the prompt says. Prints a line\n"
    "per prompt (name, ok/miss, checks passed, prompt, what was seen), the accuracy per\n"
    "attribute, and last a machine-readable summary line:\n"
    "  shapes-eval images=N prompts=N ... colour=0.9950 ... prompts_ok=0.98 colour_shape_ok=0.99\n"
    "(prompts_ok: the share of prompts with every check right; colour_shape_ok: with\n"
    "every colour and shape right; an attribute no prompt names shows as -1). Prompts\n"
    "outside the grammar (no shape named, three objects) and undecodable images are\n"
    "counted and skipped.\n"
    "\n"
    "  --all-lines           judge every caption line, not only the first\n"
    "  --misses              print only prompts with a failed check\n"
    "  --quiet               print only the summary\n"
    "  -t THREADS            threads\n"
    "Exit status: 0 ok, 1 runtime failure (unreadable folder, no image), 2 usage.\n";

static const char *eval_usage =
    "usage: dalle-c eval shapes IMAGE_DIR [options]\n"
    "       dalle-c eval nearest IMAGE_DIR --train TRAIN_DIR [options]\n"
    "       dalle-c eval score IMAGE_DIR [-m MODEL] [options]\n"
    "(each with --help for its options)\n";

typedef struct {
    int status; /* 0 judged, 1 unparsed prompt, 2 unreadable image */
    const char *prompt;
    shapes_verdict_t v;
    char note[256];
} result_t;

static void describe(char *buf, size_t n, const shapes_verdict_t *v)
{
    size_t k = 0;
    buf[0] = 0;
    for (int o = 0; o < v->seen.n && k < n; o++) {
        const shapes_object_t *s = &v->seen.obj[o];
        if (s->shape < 0) {
            k += (size_t)snprintf(buf + k, n - k, "%snothing", o ? "; " : "");
            continue;
        }
        k += (size_t)snprintf(buf + k, n - k, "%s%s %s %s at %s", o ? "; " : "",
                              s->size == SHAPES_LARGE ? "large" : "small", shapes_colour_names[s->colour],
                              shapes_shape_names[s->shape], shapes_pos_names[s->pos]);
    }
    if (k < n)
        snprintf(buf + k, n - k, "; %s background; %d object%s", v->seen.background >= 0 ?
                 shapes_background_names[v->seen.background] : "other", v->objects_found,
                 v->objects_found == 1 ? "" : "s");
}

static int eval_shapes(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(eval_shapes_usage, stdout);
        return 0;
    }
    const char *dir = NULL;
    int all_lines = 0, mode = 0; /* 0 all, 1 misses, 2 quiet */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--all-lines") == 0) all_lines = 1;
        else if (strcmp(a, "--misses") == 0) mode = 1;
        else if (strcmp(a, "--quiet") == 0) mode = 2;
        else if ((strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) && i + 1 < argc && atoi(argv[i + 1]) > 0)
            nn_set_threads(atoi(argv[++i]));
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dalle-c eval shapes: unknown option '%s'\n%s", a, eval_shapes_usage);
            return 2;
        } else if (dir) {
            fprintf(stderr, "dalle-c eval shapes: one IMAGE_DIR only\n%s", eval_shapes_usage);
            return 2;
        } else {
            dir = a;
        }
    }
    if (!dir) {
        fprintf(stderr, "dalle-c eval shapes: missing IMAGE_DIR\n%s", eval_shapes_usage);
        return 2;
    }
    ds_config_t dc = ds_config_default();
    dc.holdout = 0;
    dc.require_captions = 1;
    ds_t *ds;
    char err[256];
    if (ds_open(&ds, dir, &dc, err) != 0) {
        fprintf(stderr, "dalle-c eval shapes: %s\n", err);
        return 1;
    }
    size_t n_img = ds_count(ds, DS_TRAIN), n = 0;
    size_t *first = malloc((n_img + 1) * sizeof *first);
    if (!first) {
        ds_close(ds);
        fprintf(stderr, "dalle-c eval shapes: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n_img; i++) {
        first[i] = n;
        n += all_lines ? (size_t)ds_caption_count(ds, DS_TRAIN, i) : 1;
    }
    first[n_img] = n;
    result_t *res = calloc(n, sizeof *res);
    if (!res) {
        free(first), ds_close(ds);
        fprintf(stderr, "dalle-c eval shapes: out of memory\n");
        return 1;
    }
    progress_t p;
    progress_start(&p, stderr, "eval shapes", (long)n_img);
    for (size_t start = 0; start < n_img; start += 256) {
        size_t end = start + 256 < n_img ? start + 256 : n_img;
#pragma omp parallel for schedule(dynamic)
        for (size_t i = start; i < end; i++) {
            char path[8192], e[256];
            snprintf(path, sizeof path, "%s/%s", ds_root(ds), ds_name(ds, DS_TRAIN, i));
            img_t img = {0};
            int rc = img_load(&img, path, e);
            for (size_t r = first[i]; r < first[i + 1]; r++) {
                result_t *x = &res[r];
                x->prompt = ds_caption_line(ds, DS_TRAIN, i, (int)(r - first[i]));
                shapes_scene_t want;
                if (rc) {
                    x->status = 2;
                    snprintf(x->note, sizeof x->note, "%s", e);
                } else if (shapes_parse(&want, x->prompt, e) != 0) {
                    x->status = 1;
                    snprintf(x->note, sizeof x->note, "%s", e);
                } else if (shapes_evaluate(&img, &want, &x->v, e) != 0) {
                    x->status = 2;
                    snprintf(x->note, sizeof x->note, "%s", e);
                }
            }
            img_deinit(&img);
        }
        progress_update(&p, (long)end, NULL);
    }
    progress_finish(&p, NULL);

    long checked[SHAPES_N_ATTR] = {0}, correct[SHAPES_N_ATTR] = {0};
    long judged = 0, ok = 0, ok_colour_shape = 0, unparsed = 0, unreadable = 0;
    for (size_t i = 0; i < n_img; i++)
        for (size_t r = first[i]; r < first[i + 1]; r++) {
            const result_t *x = &res[r];
            if (x->status) {
                unparsed += x->status == 1, unreadable += x->status == 2;
                if (mode < 2) printf("%s\t%s\t%s\t%s\n", ds_name(ds, DS_TRAIN, i),
                                     x->status == 1 ? "skipped" : "unreadable", x->prompt, x->note);
                continue;
            }
            int c = 0, k = 0;
            for (int a = 0; a < SHAPES_N_ATTR; a++) {
                checked[a] += x->v.checked[a], correct[a] += x->v.correct[a];
                c += x->v.checked[a], k += x->v.correct[a];
            }
            judged++, ok += c == k;
            ok_colour_shape += x->v.correct[SHAPES_ATTR_COLOUR] == x->v.checked[SHAPES_ATTR_COLOUR] &&
                               x->v.correct[SHAPES_ATTR_SHAPE] == x->v.checked[SHAPES_ATTR_SHAPE];
            if (mode == 2 || (mode == 1 && c == k)) continue;
            char seen[512], fails[256] = "";
            describe(seen, sizeof seen, &x->v);
            size_t fl = 0;
            for (int a = 0; a < SHAPES_N_ATTR; a++)
                if (x->v.correct[a] < x->v.checked[a] && fl < sizeof fails)
                    fl += (size_t)snprintf(fails + fl, sizeof fails - fl, "%s%s", fl ? "," : " wrong: ",
                                           shapes_attr_names[a]);
            printf("%s\t%s\t%d/%d\t%s\tseen: %s%s\n", ds_name(ds, DS_TRAIN, i), c == k ? "ok" : "miss", k, c,
                   x->prompt, seen, fails);
        }
    long tc = 0, tk = 0;
    printf("\nattribute    correct / checked\n");
    for (int a = 0; a < SHAPES_N_ATTR; a++) {
        tc += checked[a], tk += correct[a];
        if (checked[a])
            printf("%-12s %6.2f%%  %ld / %ld\n", shapes_attr_names[a], 100.0 * (double)correct[a] / (double)checked[a],
                   correct[a], checked[a]);
        else
            printf("%-12s    -     (no prompt names it)\n", shapes_attr_names[a]);
    }
    printf("%-12s %6.2f%%  %ld / %ld\n", "all", tc ? 100.0 * (double)tk / (double)tc : 0.0, tk, tc);
    printf("%-12s %6.2f%%  %ld / %ld prompts with every check right\n", "prompts",
           judged ? 100.0 * (double)ok / (double)judged : 0.0, ok, judged);
    printf("%-12s %6.2f%%  %ld / %ld prompts with every colour and shape right\n", "colour+shape",
           judged ? 100.0 * (double)ok_colour_shape / (double)judged : 0.0, ok_colour_shape, judged);
    printf("shapes-eval images=%zu prompts=%ld unparsed=%ld unreadable=%ld uncaptioned=%zu", n_img, judged,
           unparsed, unreadable, ds_uncaptioned(ds));
    for (int a = 0; a < SHAPES_N_ATTR; a++)
        printf(" %s=%.4f", shapes_attr_names[a], checked[a] ? (double)correct[a] / (double)checked[a] : -1.0);
    printf(" attributes=%.4f prompts_ok=%.4f colour_shape_ok=%.4f\n", tc ? (double)tk / (double)tc : -1.0,
           judged ? (double)ok / (double)judged : -1.0, judged ? (double)ok_colour_shape / (double)judged : -1.0);
    free(res), free(first);
    ds_close(ds);
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(eval_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "shapes") == 0) return eval_shapes(argc - 1, argv + 1);
    if (strcmp(argv[1], "nearest") == 0) return eval_nearest(argc - 1, argv + 1);
    if (strcmp(argv[1], "score") == 0) return cmd_eval_score(argc - 1, argv + 1);
    fprintf(stderr, "dalle-c eval: unknown subcommand '%s'\n%s", argv[1], eval_usage);
    return 2;
}
