/* progress.h — a live progress line on a terminal (redrawn in place) and plain periodic lines
 * otherwise (logs, CI). Human text goes to stderr. */
#ifndef TERN_PROGRESS_H
#define TERN_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct Progress {
    int tty;
    double t0, last_draw;
    int drawn;
} Progress;

void progress_init(Progress *p);
/* frac in [0, 1] (or < 0 when unknown); text: what to show. Plain mode prints only when
 * force is set. */
void progress_update(Progress *p, double frac, const char *text, int force);
void progress_done(Progress *p);
/* "1h02m" / "3m20s" / "12s" */
void format_duration(double seconds, char *buf, size_t n);

#endif
