/*
 * One store worker thread. On FerretDB 1.24 only {_id: x} filters are
 * pushed down to SQLite: every other query reads the whole collection
 * (seconds for tens of thousands of logs), and blocking the event loop
 * that long would miss the supervisor's pings. Scans therefore run here;
 * their results come back to the loop, where the state is changed.
 */
#ifndef AR_LIB_WORKER_H
#define AR_LIB_WORKER_H

#include <event2/event.h>

struct worker_job;

/* Runs on the worker thread: store calls only, no shared state. */
typedef void (*worker_fn)(void *arg);
/* Runs on the event loop afterwards, with the same arg. */
typedef void (*worker_done_fn)(void *arg);

/*
 * Start the thread (once: later calls do nothing); results are delivered
 * on base. 0 or -errno.
 */
int	worker_start(struct event_base *base);
/*
 * The same with n threads taking jobs from one queue: jobs may then run
 * concurrently, so a caller that needs two jobs in order submits the
 * second from the first's done.
 */
int	worker_start_threads(struct event_base *base, unsigned n);
/* Queue a job; done(arg) always follows work(arg). 0 or -errno. */
int	worker_submit(worker_fn work, worker_done_fn done, void *arg);
/* Jobs queued or running. */
unsigned worker_pending(void);

#endif
