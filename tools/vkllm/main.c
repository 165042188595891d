/* vkllm: the command-line tool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm <command> [options]\n"
            "\n"
            "commands:\n"
            "  run        generate from a prompt (default: a built-in tiny model), streaming text\n"
            "  chat       interactive multi-turn chat with the model's chat template (Phi-3, Phi-4)\n"
            "  bench      prompt-processing and generation speed, with spread over repetitions\n"
            "  profile    GPU time per kernel of a prefill and of decode steps, against the read ceiling\n"
            "  validate   run a model on a fixture's tokens and compare every checkpoint with it\n"
            "  info       the chosen Vulkan device, its features, the kernels of this build, and a self-check\n"
            "             of every kernel against the CPU reference\n"
            "\n"
            "Run `vkllm <command> --help` for a command's options.\n"
            "Environment: VKLLM_DEVICE=<index or name part> picks the device, VKLLM_VALIDATE=1 turns on the\n"
            "Khronos validation layer, VKLLM_DISABLE=coopmat,... turns optional device features off.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "profile")) return cmd_profile(argc - 1, argv + 1);
    if (!strcmp(cmd, "validate")) return cmd_validate(argc - 1, argv + 1);
    fprintf(stderr, "vkllm: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
