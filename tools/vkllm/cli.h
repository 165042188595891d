/* The subcommands of the vkllm tool and what they share; each command returns the process exit
 * code (0 ok, 1 failure, 2 bad usage). */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "vkllm/device.h"
#include "vkllm/model.h"
#include "vkllm/sampler.h"
#include "vkllm/tokenizer.h"

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_profile(int argc, char **argv);

extern volatile sig_atomic_t cli_interrupted;
void cli_catch_sigint(void);
double cli_now(void);
/* Parse a flag's value; on a bad one print "vkllm <cmd>: <flag> needs ..." and return 0. */
int cli_u32(const char *cmd, const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out);
int cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
int cli_float(const char *cmd, const char *flag, const char *s, float lo, float hi, float *out);
int cli_tokens(const char *cmd, const char *s, int32_t **out, uint32_t *n);
/* --act-q8 auto|on|off -> vkllm_session_options.act_q8 (0, 1, -1); 0 and a message on a bad value. */
int cli_act_q8(const char *cmd, const char *s, int *out);
/* Path of the built-in tiny model, written deterministically at first use; NULL (message printed)
 * on failure. */
const char *cli_builtin_model(char *buf, size_t n);
vkllm_device *cli_open_device(const char *cmd, const char *select);
vkllm_model *cli_load_model(const char *cmd, vkllm_device *dev, const char *path, uint32_t n_ctx);

/* Text generation helpers shared by run and chat (chat.c). */
/* A sampling flag (--temp --top-k --top-p --min-p --repeat-penalty --seed) into sp: 1 parsed, 0 bad
 * value (message printed), -1 not a sampling flag. */
int cli_sampling_flag(const char *cmd, const char *flag, const char *value, vkllm_sampler_params *sp);
/* Samples one token from full logits; 0 on failure. */
int cli_sample_logits(vkllm_sampler *smp, const float *logits, uint32_t n_vocab, int32_t *tok);
/* The loaded model's tokenizer; NULL (message printed) if its metadata is refused. */
vkllm_tokenizer *cli_load_tokenizer(const char *cmd, vkllm_model *m);
/* Streams one token's text to stdout (a split UTF-8 character waits for its end); flush at the end. */
void cli_print_token(vkllm_detok *d, int32_t tok);
void cli_print_flush(vkllm_detok *d);
#include <stdio.h>
/* Device memory (weights vs the file's tensor bytes, KV cache, scratch) and the process's RSS. */
void cli_memory_report(FILE *f, vkllm_model *m, vkllm_session *s);
#endif
