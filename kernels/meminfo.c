#include "kernels/meminfo.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "kernels/util.h"

/* The value after `key` in a "key value" or "key: value kB" text file; -1 when absent. */
static double file_field(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    size_t klen = strlen(key);
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && (line[klen] == ' ' || line[klen] == ':' || line[klen] == '\t')) {
            char *end;
            v = strtod(line + klen + 1, &end);
            if (strstr(end, "kB")) v *= 1024;
            break;
        }
    fclose(f);
    return v;
}

/* The first number in a one-value file ("max" reads as unlimited: -1). */
static double file_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    double v = -1;
    if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3)) v = strtod(buf, NULL);
    fclose(f);
    return v;
}

/* This process's cgroup folder for the memory controller, from /proc/self/cgroup: "N:memory:/p"
 * (v1) or "0::/p" (v2). 0 when none is mounted where expected. */
static int cgroup_dir(char *dir, size_t n, int *v2) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        const char *ctrl = c1 + 1, *path = c2 + 1;
        if (strstr(ctrl, "memory")) {
            snprintf(dir, n, "/sys/fs/cgroup/memory%s", path);
            *v2 = 0;
            found = 1;
        } else if (!*ctrl && line[0] == '0') {
            snprintf(dir, n, "/sys/fs/cgroup%s", path);
            *v2 = 1;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* limit - (usage - file cache) of the cgroup, or -1 when there is no limit to read. Inside a
 * container the cgroup's own folder may not be visible: the mount's root is then its view. */
static double cgroup_available(void) {
    char dir[900], p[1000];
    int v2 = 0;
    if (!cgroup_dir(dir, sizeof dir, &v2)) return -1;
    const char *limit_f = v2 ? "memory.max" : "memory.limit_in_bytes", *usage_f = v2 ? "memory.current" : "memory.usage_in_bytes";
    snprintf(p, sizeof p, "%s/%s", dir, limit_f);
    double limit = file_number(p);
    if (limit < 0) {
        snprintf(dir, sizeof dir, "%s", v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory");
        snprintf(p, sizeof p, "%s/%s", dir, limit_f);
        limit = file_number(p);
    }
    if (limit < 0 || limit >= 0x1p60) return -1; /* v1 writes "no limit" as ~2^63 */
    snprintf(p, sizeof p, "%s/%s", dir, usage_f);
    double usage = file_number(p);
    snprintf(p, sizeof p, "%s/memory.stat", dir);
    double fa = file_field(p, v2 ? "active_file" : "total_active_file"), fi = file_field(p, v2 ? "inactive_file" : "total_inactive_file");
    if (usage < 0) usage = 0;
    usage -= (fa > 0 ? fa : 0) + (fi > 0 ? fi : 0);
    return usage < limit ? limit - (usage > 0 ? usage : 0) : 0;
}

/* A resource limit minus what this process already has under it, or -1 when unlimited. */
static double rlimit_available(int resource, const char *used_key) {
    struct rlimit rl;
    if (getrlimit(resource, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return -1;
    double used = file_field("/proc/self/status", used_key);
    double left = (double)rl.rlim_cur - (used > 0 ? used : 0);
    return left > 0 ? left : 0;
}

MemAvail mem_available(void) {
    MemAvail a = {SIZE_MAX, "MemAvailable"};
    double best = -1;
    double avail = file_field("/proc/meminfo", "MemAvailable"), swap = file_field("/proc/meminfo", "SwapFree");
    if (avail >= 0) best = avail + (swap > 0 ? swap : 0);
    struct {
        double v;
        const char *name;
    } bounds[] = {{cgroup_available(), "cgroup memory limit"},
                  {rlimit_available(RLIMIT_AS, "VmSize"), "ulimit -v"},
                  {rlimit_available(RLIMIT_DATA, "VmData"), "ulimit -d"}};
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i].v >= 0 && (best < 0 || bounds[i].v < best)) best = bounds[i].v, a.limit = bounds[i].name;
    if (best >= 0) a.bytes = best >= (double)SIZE_MAX ? SIZE_MAX : (size_t)best;
    return a;
}

int mem_check(size_t bytes, const char *what, Err *err) {
    MemAvail a = mem_available();
    if (bytes <= a.bytes) return 0;
    char need[32], have[32];
    format_bytes((double)bytes, need, sizeof need);
    format_bytes((double)a.bytes, have, sizeof have);
    return err_set(err, "%s need %s, only %s available (%s)", what, need, have, a.limit);
}

void mem_require(size_t bytes, const char *what) {
    Err err = {0};
    if (!mem_check(bytes, what, &err)) return;
    fprintf(stderr, "tern: %s\n", err.msg);
    exit(1);
}
