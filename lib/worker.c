/*
 * The store worker thread. See worker.h.
 */
#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/worker.h"

struct worker_job {
	STAILQ_ENTRY(worker_job)	 entry;
	worker_fn			 work;
	worker_done_fn			 done;
	void				*arg;
};

STAILQ_HEAD(worker_q, worker_job);

static pthread_mutex_t	 worker_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 worker_cv = PTHREAD_COND_INITIALIZER;
static struct worker_q	 worker_todo = STAILQ_HEAD_INITIALIZER(worker_todo);
static struct worker_q	 worker_done = STAILQ_HEAD_INITIALIZER(worker_done);
static unsigned		 worker_n;
static int		 worker_pipe[2] = { -1, -1 };
static struct event	*worker_ev;

static void *
worker_main(void *unused)
{
	struct worker_job	*j;
	char			 c = 1;

	for (;;) {
		pthread_mutex_lock(&worker_mtx);
		while ((j = STAILQ_FIRST(&worker_todo)) == NULL)
			pthread_cond_wait(&worker_cv, &worker_mtx);
		STAILQ_REMOVE_HEAD(&worker_todo, entry);
		pthread_mutex_unlock(&worker_mtx);
		j->work(j->arg);
		pthread_mutex_lock(&worker_mtx);
		STAILQ_INSERT_TAIL(&worker_done, j, entry);
		pthread_mutex_unlock(&worker_mtx);
		(void)write(worker_pipe[1], &c, 1);
	}
	return NULL;
}

/* The loop side: run the done callbacks of finished jobs. */
static void
worker_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_q		 q = STAILQ_HEAD_INITIALIZER(q);
	struct worker_job	*j;
	char			 buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&worker_mtx);
	STAILQ_CONCAT(&q, &worker_done);
	pthread_mutex_unlock(&worker_mtx);
	while ((j = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, entry);
		worker_n--;
		j->done(j->arg);
		free(j);
	}
}

int
worker_start(struct event_base *base)
{
	return worker_start_threads(base, 1);
}

int
worker_start_threads(struct event_base *base, unsigned n)
{
	pthread_t	t;
	sigset_t	all, old;
	unsigned	i;
	int		rc = 0;

	if (worker_ev != NULL)
		return 0;	/* started once per process */
	if (pipe2(worker_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return -errno;
	worker_ev = event_new(base, worker_pipe[0], EV_READ | EV_PERSIST,
	    worker_ready_cb, NULL);
	if (worker_ev == NULL || event_add(worker_ev, NULL) != 0)
		return -ENOMEM;
	/* Signals stay with the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < (n > 0 ? n : 1) && rc == 0; i++)
		if ((rc = pthread_create(&t, NULL, worker_main, NULL)) == 0)
			pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc != 0 ? -rc : 0;
}

int
worker_submit(worker_fn work, worker_done_fn done, void *arg)
{
	struct worker_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&worker_mtx);
	STAILQ_INSERT_TAIL(&worker_todo, j, entry);
	worker_n++;
	pthread_cond_signal(&worker_cv);
	pthread_mutex_unlock(&worker_mtx);
	return 0;
}

unsigned
worker_pending(void)
{
	return worker_n;
}
