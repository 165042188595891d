/* The subcommands of the vkllm tool; each returns the process exit code (0 ok, 1 failure, 2 usage). */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H
int cmd_info(int argc, char **argv);
#endif
