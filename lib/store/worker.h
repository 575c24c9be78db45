/*
 * Store worker threads. On FerretDB 1.24 only {_id: x} filters are
 * pushed down to SQLite: every other query reads the whole collection
 * (seconds for tens of thousands of documents), and blocking an event
 * loop that long would miss the supervisor's pings. Store calls therefore
 * run on a worker thread; their results come back to the loop, where the
 * state is changed.
 *
 * A worker is a queue of jobs and one or more threads taking them; done
 * callbacks run on the loop. worker_start() makes the daemon's default
 * worker (worker_submit() queues on it); a module whose jobs must not wait
 * behind long scans (the leases of lib/store/partition.h) makes its own with
 * worker_new().
 */
#ifndef AR_LIB_WORKER_H
#define AR_LIB_WORKER_H

#include <event2/event.h>

struct worker;

/* Runs on the worker thread: store calls only, no shared state. */
typedef void (*worker_fn)(void *arg);
/* Runs on the event loop afterwards, with the same arg. */
typedef void (*worker_done_fn)(void *arg);

/*
 * A new worker of one thread (jobs run one at a time, in order) whose
 * results are delivered on base; NULL on error.
 */
struct worker *worker_new(struct event_base *base);
/*
 * The same with n threads taking jobs from one queue: jobs may then run
 * concurrently, so a caller that needs two jobs in order submits the
 * second from the first's done.
 */
struct worker *worker_new_threads(struct event_base *base, unsigned n);
/* Queue a job on w; done(arg) always follows work(arg). 0 or -errno. */
int worker_submit_to(struct worker *w, worker_fn work, worker_done_fn done,
    void *arg);
/* Jobs of w queued or running. */
unsigned worker_pending_on(const struct worker *w);

/*
 * Start the default worker (once: later calls do nothing); results are
 * delivered on base. 0 or -errno.
 */
int worker_start(struct event_base *base);
/* The default worker with n threads (see worker_new_threads). */
int worker_start_threads(struct event_base *base, unsigned n);
/* Queue a job on the default worker. 0 or -errno. */
int worker_submit(worker_fn work, worker_done_fn done, void *arg);
/* Jobs of the default worker queued or running. */
unsigned worker_pending(void);

#endif
