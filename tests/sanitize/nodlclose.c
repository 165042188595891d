/* LD_PRELOAD shim for the sanitizer test pass (tools/test.sh): dlclose() does nothing.
 *
 * The Vulkan loader dlopen()s the driver (lavapipe, which brings LLVM) and the validation layer and
 * dlclose()s them at vkDestroyInstance. Those libraries keep some allocations for the life of the
 * process; once they are unloaded, LeakSanitizer's report at exit can no longer name the module of
 * the allocating frames ("<unknown module>"), so the leaks can be neither suppressed by library
 * (lsan.supp) nor told apart from ours. Keeping every library mapped until exit makes each report
 * name its library. Nothing else changes: a library that is not unloaded is simply still there. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
