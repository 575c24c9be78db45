/*
 * Store worker threads. See worker.h.
 */
#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/store/worker.h"

struct worker_job {
	STAILQ_ENTRY(worker_job) entry;
	worker_fn      work;
	worker_done_fn done;
	void	      *arg;
};

STAILQ_HEAD(worker_q, worker_job);

struct worker {
	pthread_mutex_t mtx;
	pthread_cond_t	cv;
	struct worker_q todo;
	struct worker_q done;
	unsigned	n; /* queued or running; loop side */
	int		pipe[2];
	struct event   *ev;
};

static struct worker *worker_default;

static void *
worker_main(void *arg)
{
	struct worker	  *w = arg;
	struct worker_job *j;
	char		   c = 1;

	for (;;) {
		pthread_mutex_lock(&w->mtx);
		while ((j = STAILQ_FIRST(&w->todo)) == NULL)
			pthread_cond_wait(&w->cv, &w->mtx);
		STAILQ_REMOVE_HEAD(&w->todo, entry);
		pthread_mutex_unlock(&w->mtx);
		j->work(j->arg);
		pthread_mutex_lock(&w->mtx);
		STAILQ_INSERT_TAIL(&w->done, j, entry);
		pthread_mutex_unlock(&w->mtx);
		(void)write(w->pipe[1], &c, 1);
	}
	return NULL;
}

/* The loop side: run the done callbacks of finished jobs. */
static void
worker_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	  *w = arg;
	struct worker_q	   q = STAILQ_HEAD_INITIALIZER(q);
	struct worker_job *j;
	char		   buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&w->mtx);
	STAILQ_CONCAT(&q, &w->done);
	pthread_mutex_unlock(&w->mtx);
	while ((j = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, entry);
		w->n--;
		j->done(j->arg);
		free(j);
	}
}

struct worker *
worker_new_threads(struct event_base *base, unsigned n)
{
	struct worker *w;
	pthread_t      t;
	sigset_t       all, old;
	unsigned       i;
	int	       rc = 0;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->pipe[0] = w->pipe[1] = -1;
	pthread_mutex_init(&w->mtx, NULL);
	pthread_cond_init(&w->cv, NULL);
	STAILQ_INIT(&w->todo);
	STAILQ_INIT(&w->done);
	if (pipe2(w->pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		goto fail;
	w->ev = event_new(base, w->pipe[0], EV_READ | EV_PERSIST,
	    worker_ready_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) != 0)
		goto fail;
	/* Signals stay with the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < (n > 0 ? n : 1) && rc == 0; i++)
		if ((rc = pthread_create(&t, NULL, worker_main, w)) == 0)
			pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0 && i <= 1)
		goto fail;
	return w; /* with the threads that could start */
fail:
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->pipe[0] >= 0) {
		close(w->pipe[0]);
		close(w->pipe[1]);
	}
	free(w);
	return NULL;
}

struct worker *
worker_new(struct event_base *base)
{
	return worker_new_threads(base, 1);
}

int
worker_submit_to(struct worker *w, worker_fn work, worker_done_fn done,
    void *arg)
{
	struct worker_job *j;

	if (w == NULL)
		return -EINVAL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->mtx);
	STAILQ_INSERT_TAIL(&w->todo, j, entry);
	w->n++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	return 0;
}

unsigned
worker_pending_on(const struct worker *w)
{
	return w != NULL ? w->n : 0;
}

int
worker_start(struct event_base *base)
{
	return worker_start_threads(base, 1);
}

int
worker_start_threads(struct event_base *base, unsigned n)
{
	if (worker_default != NULL)
		return 0; /* started once per process */
	if ((worker_default = worker_new_threads(base, n)) == NULL)
		return -ENOMEM;
	return 0;
}

int
worker_submit(worker_fn work, worker_done_fn done, void *arg)
{
	return worker_submit_to(worker_default, work, done, arg);
}

unsigned
worker_pending(void)
{
	return worker_pending_on(worker_default);
}
