#include "train/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kernels/util.h"

void progress_init(Progress *p) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    p->t0 = now_seconds();
}

void format_duration(double s, char *buf, size_t n) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

void progress_update(Progress *p, double frac, const char *text, int force) {
    double now = now_seconds();
    if (p->tty) {
        if (!force && now - p->last_draw < 0.25) return;
        p->last_draw = now;
        char bar[32] = "";
        if (frac >= 0) {
            int w = 20, k = (int)(frac * w + 0.5);
            if (k > w) k = w;
            bar[0] = '[';
            for (int i = 0; i < w; i++) bar[1 + i] = i < k ? '#' : '.';
            bar[w + 1] = ']';
            bar[w + 2] = 0;
        }
        fprintf(stderr, "\r\033[K%s %s", bar, text);
        fflush(stderr);
        p->drawn = 1;
    } else if (force) {
        fprintf(stderr, "%s\n", text);
    }
}

void progress_done(Progress *p) {
    if (p->tty && p->drawn) fprintf(stderr, "\n");
    p->drawn = 0;
}
