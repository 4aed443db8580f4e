/* cli.h — the `tern` command line: one binary, one function per subcommand (train/cmd_*.c).
 * Conventions: human text goes to stderr, `--json` prints one JSON object on stdout; bad input
 * gives one line "tern <cmd>: <what>" and exit status 1; usage errors exit 2. */
#ifndef TERN_CLI_H
#define TERN_CLI_H

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* tern export --format gguf (train/export_gguf.c) */
int cmd_export_gguf(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* Helpers shared by subcommands */
int cli_is_flag(const char *arg, const char *name);         /* "--name" */
/* "--name V" or "--name=V"; NULL when argv[*i] is another option. "--name" with nothing after it is
 * a usage error: one line, exit status 2. */
const char *cli_value(int argc, char **argv, int *i, const char *name);

#endif
