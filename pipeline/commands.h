/* The dalle-c subcommands, one function each (pipeline/cmd_*.c). Internal to pipeline/.
 * Each takes the arguments after its own name (argv[0] is the subcommand name) and
 * returns the process exit status: 0 ok, 1 runtime failure, 2 usage. */
#ifndef DALLEC_COMMANDS_H
#define DALLEC_COMMANDS_H

#include <signal.h>

typedef int (*cmd_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    cmd_fn run;
    const char *summary;
} cmd_entry_t;

/* The table, in pipeline/main.c. */
extern const cmd_entry_t dallec_commands[];

/* Ctrl-C (SIGINT) and SIGUSR1 ask a training command to checkpoint and stop
 * (pipeline/cmd_signals.c): install the handlers around the run, poll stop_requested()
 * from its progress callback, restore the previous handlers after. */
typedef struct {
    struct sigaction old_int, old_usr1;
} stop_signals_t;
void stop_signals_install(stop_signals_t *s);
void stop_signals_restore(const stop_signals_t *s);
int stop_requested(void);

/* True when argv holds -h or --help. */
int cmd_wants_help(int argc, char **argv);

/* dalle-c info MODEL (pipeline/cmd_info.c) */
int cmd_info(int argc, char **argv);

int cmd_tokenizer(int argc, char **argv); /* cmd_tokenizer.c */
int cmd_dvae(int argc, char **argv);      /* cmd_dvae.c */
int cmd_tokens(int argc, char **argv);    /* cmd_tokens.c: encode, decode, stats, atlas */
int cmd_data(int argc, char **argv);      /* cmd_data.c: shapes, convert */
int cmd_eval(int argc, char **argv);      /* cmd_eval.c: shapes; nearest below */
int eval_nearest(int argc, char **argv);  /* cmd_eval_nearest.c: dalle-c eval nearest */
/* dalle-c "PROMPT" | --prompts FILE | --from IMAGE.png [options] (cmd_generate.c); argv[0]
 * is the program name, the options start at argv[1]. */
int cmd_generate(int argc, char **argv);
/* The model file of a generating command: given (-m), else $DALLEC_MODEL, else the
 * installed and the source-tree default.dalle beside the executable (cmd_generate.c).
 * NULL after printing where it looked and how to get one; buf receives a found default. */
const char *cmd_find_model(const char *given, char *buf, size_t n);
int cmd_serve(int argc, char **argv);     /* cmd_serve.c: dalle-c serve (server/) */
int cmd_gpt_train(int argc, char **argv); /* cmd_train.c: dalle-c train (the transformer) */
int cmd_rerank(int argc, char **argv);    /* cmd_rerank.c: train, add, score */
int cmd_eval_score(int argc, char **argv); /* cmd_eval_score.c: dalle-c eval score */
int cmd_convert_model(int argc, char **argv); /* cmd_convert.c: a model file's tensors as f16/bf16/f32 */

#endif
