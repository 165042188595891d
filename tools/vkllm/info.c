/* vkllm info: device, features, kernels, self-check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "vkllm/device.h"
#include "vkllm/pipeline.h"
#include "vkllm/selfcheck.h"

static void on_result(const vkllm_selfcheck_result *r, void *user)
{
    (void)user;
    printf("  %-15s %-36s NMSE %9.2e  (bound %.0e)  %s%s%s\n", r->kernel, r->shape, r->nmse, r->bound, r->pass ? "ok" : "FAIL",
           r->message[0] ? ": " : "", r->message);
}

int cmd_info(int argc, char **argv)
{
    const char *device = NULL;
    int list = 0, check = 1;
    unsigned long long seed = (unsigned long long)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list")) list = 1;
        else if (!strcmp(argv[i], "--no-check")) check = 0;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            char *end;
            seed = strtoull(argv[++i], &end, 0);
            if (*end || !*argv[i]) {
                fprintf(stderr, "vkllm info: --seed needs a non-negative integer, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: vkllm info [--device <index|name>] [--list] [--no-check] [--seed N]\n"
                   "  --list      list the Vulkan devices and exit\n"
                   "  --device    pick a device (default: $VKLLM_DEVICE, else the first discrete GPU)\n"
                   "  --no-check  skip the kernel self-check\n"
                   "  --seed      seed of the self-check's random inputs (default: the clock)\n");
            return 0;
        } else {
            fprintf(stderr, "vkllm info: unknown or incomplete option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (list) {
        char buf[8192];
        vkllm_status s = vkllm_list_devices(buf, sizeof buf);
        fputs(buf, s ? stderr : stdout);
        return s ? 1 : 0;
    }
    vkllm_device_options o = vkllm_device_options_default();
    o.select = device;
    vkllm_device *dev;
    char err[1024];
    vkllm_status s = vkllm_device_create(&o, &dev, err, sizeof err);
    if (s) {
        fprintf(stderr, "vkllm info: %s\n", err);
        return 1;
    }
    char buf[8192];
    vkllm_features_format(vkllm_device_features(dev), buf, sizeof buf);
    fputs(buf, stdout);
    const char *path;
    static const char *states[] = { "off", "new", "loaded", "rejected (other device/driver or damaged), rebuilt" };
    vkllm_cache_state cs = vkllm_device_pipeline_cache_state(dev, &path);
    printf("pipeline cache    %s%s%s\n", states[cs], path[0] ? " " : "", path);
    printf("validation        %s\n", vkllm_device_validation_enabled(dev) ? "on (Khronos layer, synchronization too)" : "off");
    vkllm_kernels_describe(buf, sizeof buf);
    printf("kernels           %s\n", buf);
    int rc = 0;
    if (check) {
        printf("self-check (seed %llu):\n", seed);
        int n_run = 0, n_failed = 0;
        s = vkllm_selfcheck(dev, seed, on_result, NULL, &n_run, &n_failed);
        if (s) {
            fprintf(stderr, "vkllm info: self-check could not run: %s\n", vkllm_device_error(dev));
            rc = 1;
        } else {
            printf("%d passed, %d failed\n", n_run - n_failed, n_failed);
            rc = n_failed ? 1 : 0;
        }
    }
    uint64_t verr = vkllm_device_validation_errors(dev);
    vkllm_device_destroy(dev);
    if (verr) {
        fprintf(stderr, "vkllm info: the validation layer reported %llu error(s)\n", (unsigned long long)verr);
        rc = 1;
    }
    return rc;
}
