/* Pipelines from the embedded SPIR-V, kept per (kernel, specialization constants), and the
 * on-disk VkPipelineCache checked against the device UUID and driver version. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kernel_registry.h"

static const vkllm_kernel_blob *find_kernel(const char *name)
{
    for (const vkllm_kernel_blob *k = vkllm_kernel_table; k->name; k++)
        if (strcmp(k->name, name) == 0) return k;
    return NULL;
}

int vkllm_kernel_available(const char *kernel) { return kernel && find_kernel(kernel) != NULL; }

void vkllm_kernels_describe(char *buf, size_t len)
{
    size_t off = 0;
    if (len) buf[0] = '\0';
    int w = snprintf(buf, len, "built with glslang %s:", vkllm_glslang_version);
    if (w > 0) off += (size_t)w;
    for (const vkllm_kernel_blob *k = vkllm_kernel_table; k->name && off < len; k++) {
        w = snprintf(buf + off, len - off, " %s", k->name);
        if (w > 0) off += (size_t)w;
    }
    for (const vkllm_kernel_skip *s = vkllm_kernel_skipped; s->name && off < len; s++) {
        w = snprintf(buf + off, len - off, "%s %s (not built: glslang lacks %s)", s == vkllm_kernel_skipped ? "\nskipped:" : ",",
                     s->name, s->feature);
        if (w > 0) off += (size_t)w;
    }
}

uint32_t vkllm_pipeline_count(const vkllm_device *dev)
{
    if (!dev) return 0;
    pthread_mutex_t *lock = (pthread_mutex_t *)&dev->pipe_lock; /* a read; the lock is not const */
    pthread_mutex_lock(lock);
    uint32_t n = dev->n_pipelines;
    pthread_mutex_unlock(lock);
    return n;
}

static int same_desc(const vkllm_pipeline_desc *a, const vkllm_pipeline_desc *b)
{
    return strcmp(a->kernel, b->kernel) == 0 && a->n_bindings == b->n_bindings && a->push_size == b->push_size &&
           a->n_spec == b->n_spec && a->required_subgroup_size == b->required_subgroup_size &&
           memcmp(a->spec, b->spec, a->n_spec * sizeof a->spec[0]) == 0;
}

static void destroy_pipeline(vkllm_device *dev, struct vkllm_pipeline *p)
{
    if (!p) return;
    if (p->pipeline) vkDestroyPipeline(dev->device, p->pipeline, NULL);
    if (p->layout) vkDestroyPipelineLayout(dev->device, p->layout, NULL);
    if (p->set_layout) vkDestroyDescriptorSetLayout(dev->device, p->set_layout, NULL);
    free(p);
}

/* VKLLM_PIPELINE_STATS: one stderr line per pipeline: kernel, specialization constants, and the
 * driver's statistics of each executable (e.g. NVIDIA: registers, shared memory, binary size) */
static void print_stats(vkllm_device *dev, const vkllm_pipeline_desc *d, const char *name, VkPipeline pl)
{
    PFN_vkGetPipelineExecutablePropertiesKHR props =
        (PFN_vkGetPipelineExecutablePropertiesKHR)vkGetDeviceProcAddr(dev->device, "vkGetPipelineExecutablePropertiesKHR");
    PFN_vkGetPipelineExecutableStatisticsKHR stats =
        (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(dev->device, "vkGetPipelineExecutableStatisticsKHR");
    if (!props || !stats) return;
    VkPipelineInfoKHR pi = { .sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = pl };
    uint32_t ne = 0;
    if (props(dev->device, &pi, &ne, NULL) != VK_SUCCESS) return;
    for (uint32_t e = 0; e < ne && e < 4; e++) {
        char line[1024];
        int n = snprintf(line, sizeof line, "pipeline-stats %s spec", name);
        for (uint32_t i = 0; i < d->n_spec && n < (int)sizeof line - 16; i++) n += snprintf(line + n, sizeof line - n, "%s%u", i ? "," : "=", d->spec[i]);
        VkPipelineExecutableInfoKHR ei = { .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pl, .executableIndex = e };
        VkPipelineExecutableStatisticKHR st[32];
        uint32_t ns = 32;
        for (uint32_t i = 0; i < ns; i++) st[i] = (VkPipelineExecutableStatisticKHR){ .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR };
        if (stats(dev->device, &ei, &ns, st) < 0) continue;
        for (uint32_t i = 0; i < ns && n < (int)sizeof line - 64; i++) {
            n += snprintf(line + n, sizeof line - n, " | %s=", st[i].name);
            switch (st[i].format) {
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: n += snprintf(line + n, sizeof line - n, "%u", st[i].value.b32); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: n += snprintf(line + n, sizeof line - n, "%lld", (long long)st[i].value.i64); break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: n += snprintf(line + n, sizeof line - n, "%llu", (unsigned long long)st[i].value.u64); break;
            default: n += snprintf(line + n, sizeof line - n, "%g", st[i].value.f64); break;
            }
        }
        fprintf(stderr, "%s\n", line);
    }
}

static vkllm_status create_pipeline(vkllm_device *dev, const vkllm_pipeline_desc *d, const vkllm_kernel_blob *k,
                                    struct vkllm_pipeline *p)
{
    VkDescriptorSetLayoutBinding b[VKLLM_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){ .binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                               .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    VkDescriptorSetLayoutCreateInfo dl = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = d->n_bindings, .pBindings = b };
    VK_CHECK(dev, vkCreateDescriptorSetLayout(dev->device, &dl, NULL, &p->set_layout));
    VkPushConstantRange pr = { .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = d->push_size };
    VkPipelineLayoutCreateInfo pl = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &p->set_layout, .pushConstantRangeCount = d->push_size ? 1u : 0u,
                                      .pPushConstantRanges = &pr };
    VK_CHECK(dev, vkCreatePipelineLayout(dev->device, &pl, NULL, &p->layout));

    VkShaderModuleCreateInfo smi = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = *k->size,
                                     .pCode = k->words };
    VkShaderModule mod;
    VK_CHECK(dev, vkCreateShaderModule(dev->device, &smi, NULL, &mod));
    VkSpecializationMapEntry me[VKLLM_MAX_SPEC];
    for (uint32_t i = 0; i < d->n_spec; i++) me[i] = (VkSpecializationMapEntry){ i, i * 4u, 4 };
    VkSpecializationInfo si = { .mapEntryCount = d->n_spec, .pMapEntries = me, .dataSize = d->n_spec * 4u, .pData = d->spec };
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rss = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = d->required_subgroup_size };
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                   .pNext = d->required_subgroup_size ? &rss : NULL,
                   .flags = d->required_subgroup_size ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT : 0,
                   .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main",
                   .pSpecializationInfo = d->n_spec ? &si : NULL },
        .layout = p->layout };
    if (dev->pipeline_stats) ci.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    VkResult r = vkCreateComputePipelines(dev->device, dev->pcache, 1, &ci, NULL, &p->pipeline);
    vkDestroyShaderModule(dev->device, mod, NULL);
    VK_CHECK(dev, r);
    if (dev->pipeline_stats) print_stats(dev, d, k->name, p->pipeline);
    vkllm_name_object(dev, VK_OBJECT_TYPE_PIPELINE, (uint64_t)(uintptr_t)p->pipeline, k->name);
    return VKLLM_OK;
}

static vkllm_status get_locked(vkllm_device *dev, const vkllm_pipeline_desc *d, vkllm_pipeline **out);

/* Sessions in several threads record chains at the same time: lookup and creation happen under
 * pipe_lock, so a pipeline is created once and the list is never seen half-linked. */
vkllm_status vkllm_pipeline_get(vkllm_device *dev, const vkllm_pipeline_desc *d, vkllm_pipeline **out)
{
    if (!dev || !d || !out || !d->kernel) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_pipeline_get: NULL argument");
    *out = NULL;
    pthread_mutex_lock(&dev->pipe_lock);
    vkllm_status s = get_locked(dev, d, out);
    pthread_mutex_unlock(&dev->pipe_lock);
    return s;
}

static vkllm_status get_locked(vkllm_device *dev, const vkllm_pipeline_desc *d, vkllm_pipeline **out)
{
    for (pipeline_entry *e = dev->pipelines; e; e = e->next)
        if (same_desc(&e->desc, d)) {
            *out = e->p;
            return VKLLM_OK;
        }
    const vkllm_kernel_blob *k = find_kernel(d->kernel);
    if (!k) {
        for (const vkllm_kernel_skip *s = vkllm_kernel_skipped; s->name; s++)
            if (strcmp(s->name, d->kernel) == 0)
                return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED,
                                  "kernel '%s' is not in this build: its glslang (%s) cannot compile %s; run tools/setup.sh "
                                  "(installs glslang >= 15) and rebuild",
                                  d->kernel, vkllm_glslang_version, s->feature);
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "no kernel named '%s' in this build", d->kernel);
    }
    if (d->n_bindings > VKLLM_MAX_BINDINGS || d->n_spec > VKLLM_MAX_SPEC || d->push_size % 4 ||
        d->push_size > dev->f.max_push_constants || strlen(d->kernel) >= 64)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "kernel '%s': bad pipeline description (%u bindings, %u spec constants, %u push bytes)", d->kernel,
                          d->n_bindings, d->n_spec, d->push_size);
    if (d->required_subgroup_size &&
        (!dev->f.subgroup_size_control || d->required_subgroup_size < dev->f.min_subgroup_size ||
         d->required_subgroup_size > dev->f.max_subgroup_size))
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "kernel '%s': subgroup size %u is not available on '%s'", d->kernel,
                          d->required_subgroup_size, dev->f.name);
    struct vkllm_pipeline *p = calloc(1, sizeof *p);
    pipeline_entry *e = calloc(1, sizeof *e);
    if (!p || !e) {
        free(p);
        free(e);
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory creating pipeline '%s'", d->kernel);
    }
    vkllm_status s = create_pipeline(dev, d, k, p);
    if (s) {
        destroy_pipeline(dev, p);
        free(e);
        return s;
    }
    p->n_bindings = d->n_bindings;
    p->push_size = d->push_size;
    snprintf(p->kernel, sizeof p->kernel, "%s", d->kernel);
    e->desc = *d;
    snprintf(e->kernel, sizeof e->kernel, "%s", d->kernel);
    e->desc.kernel = e->kernel;
    e->p = p;
    e->next = dev->pipelines;
    dev->pipelines = e;
    dev->n_pipelines++;
    *out = p;
    return VKLLM_OK;
}

void vkllm_pipelines_destroy_all(vkllm_device *dev)
{
    if (dev->pcache) {
        vkllm_pipeline_cache_save(dev);
        vkDestroyPipelineCache(dev->device, dev->pcache, NULL);
        dev->pcache = VK_NULL_HANDLE;
    }
    for (pipeline_entry *e = dev->pipelines; e;) {
        pipeline_entry *n = e->next;
        destroy_pipeline(dev, e->p);
        free(e);
        e = n;
    }
    dev->pipelines = NULL;
    dev->n_pipelines = 0;
}

/* ---- the cache file: our header, then the driver's blob ---- */

#define CACHE_MAGIC "VKLLMPC1"

typedef struct cache_header {
    char magic[8];
    uint8_t device_uuid[16];
    uint32_t vendor_id, device_id, driver_version, reserved;
    uint64_t data_size;
    uint64_t checksum; /* FNV-1a 64 of the data */
} cache_header;

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static int cache_dir(char *out, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int w;
    if (xdg && *xdg == '/') w = snprintf(out, len, "%s/vkllm", xdg);
    else if (home && *home) w = snprintf(out, len, "%s/.cache/vkllm", home);
    else return -1;
    return w > 0 && (size_t)w < len ? 0 : -1;
}

vkllm_status vkllm_pipeline_cache_open(vkllm_device *dev, int enabled)
{
    dev->pcache_state = VKLLM_CACHE_OFF;
    void *data = NULL;
    size_t size = 0;
    char dir[900];
    if (enabled && cache_dir(dir, sizeof dir) == 0) {
        snprintf(dev->pcache_path, sizeof dev->pcache_path, "%s/pipelines-%04x-%04x.bin", dir, dev->f.vendor_id, dev->f.device_id);
        dev->pcache_state = VKLLM_CACHE_EMPTY;
        FILE *fp = fopen(dev->pcache_path, "rb");
        if (fp) {
            cache_header h;
            dev->pcache_state = VKLLM_CACHE_REJECTED;
            if (fread(&h, sizeof h, 1, fp) == 1 && memcmp(h.magic, CACHE_MAGIC, 8) == 0 &&
                memcmp(h.device_uuid, dev->f.device_uuid, 16) == 0 && h.vendor_id == dev->f.vendor_id &&
                h.device_id == dev->f.device_id && h.driver_version == dev->f.driver_version && h.data_size > 0 &&
                h.data_size < (1ull << 30)) {
                data = malloc((size_t)h.data_size);
                if (data && fread(data, 1, (size_t)h.data_size, fp) == h.data_size &&
                    fnv1a(data, (size_t)h.data_size) == h.checksum) {
                    size = (size_t)h.data_size;
                    dev->pcache_state = VKLLM_CACHE_LOADED;
                } else {
                    free(data);
                    data = NULL;
                }
            }
            fclose(fp);
        }
    }
    VkPipelineCacheCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = size,
                                     .pInitialData = data };
    VkResult r = vkCreatePipelineCache(dev->device, &ci, NULL, &dev->pcache);
    if (r != VK_SUCCESS && data) { /* the driver refused our blob after all: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        dev->pcache_state = VKLLM_CACHE_REJECTED;
        r = vkCreatePipelineCache(dev->device, &ci, NULL, &dev->pcache);
    }
    free(data);
    dev->pcache_loaded_size = size;
    if (!enabled) dev->pcache_path[0] = '\0';
    VK_CHECK(dev, r);
    return VKLLM_OK;
}

static vkllm_status cache_save_locked(vkllm_device *dev);

vkllm_status vkllm_pipeline_cache_save(vkllm_device *dev)
{
    if (!dev || !dev->pcache || dev->pcache_state == VKLLM_CACHE_OFF || !dev->pcache_path[0]) return VKLLM_OK;
    pthread_mutex_lock(&dev->pipe_lock);
    vkllm_status s = cache_save_locked(dev);
    pthread_mutex_unlock(&dev->pipe_lock);
    return s;
}

static vkllm_status cache_save_locked(vkllm_device *dev)
{
    size_t size = 0;
    VK_CHECK(dev, vkGetPipelineCacheData(dev->device, dev->pcache, &size, NULL));
    if (size == 0 || size == dev->pcache_loaded_size) return VKLLM_OK; /* nothing new */
    void *data = malloc(size);
    if (!data) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory saving the pipeline cache");
    VkResult r = vkGetPipelineCacheData(dev->device, dev->pcache, &size, data);
    if (r != VK_SUCCESS) {
        free(data);
        VK_CHECK(dev, r);
    }
    cache_header h = { .vendor_id = dev->f.vendor_id, .device_id = dev->f.device_id, .driver_version = dev->f.driver_version,
                       .data_size = size, .checksum = fnv1a(data, size) };
    memcpy(h.magic, CACHE_MAGIC, 8);
    memcpy(h.device_uuid, dev->f.device_uuid, 16);
    char dir[1024], tmp[1100];
    snprintf(dir, sizeof dir, "%s", dev->pcache_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", dev->pcache_path, (long)getpid());
    vkllm_status s = VKLLM_OK;
    FILE *fp = NULL;
    if (mkdirs(dir) != 0 || !(fp = fopen(tmp, "wb")) || fwrite(&h, sizeof h, 1, fp) != 1 || fwrite(data, 1, size, fp) != size) {
        s = vkllm_fail(dev, VKLLM_ERROR_IO, "cannot write the pipeline cache %s: %s (set VKLLM_NO_PIPELINE_CACHE=1 to skip it)",
                       tmp, strerror(errno));
    }
    if (fp && fclose(fp) != 0 && !s) s = vkllm_fail(dev, VKLLM_ERROR_IO, "cannot write %s: %s", tmp, strerror(errno));
    if (!s && rename(tmp, dev->pcache_path) != 0)
        s = vkllm_fail(dev, VKLLM_ERROR_IO, "cannot rename %s: %s", tmp, strerror(errno));
    if (s) remove(tmp);
    else dev->pcache_loaded_size = size;
    free(data);
    return s;
}
