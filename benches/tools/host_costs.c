/* What this host charges for the events a signalled transfer is made of,
 * in CPU of the thread that pays: a timer-driven sleep and wake, a wake by
 * another thread through an eventfd, a futex round trip between two
 * threads (across two vCPUs and on one), an fsync after a WAL-sized write, a plain system call. Run it
 * beside a benchmark to tell a slow hour from a slow build:
 *   gcc -O2 -pthread -o /tmp/host_costs benches/tools/host_costs.c && /tmp/host_costs [dir]
 * dir: where the fsync probe writes (default: the current directory, which
 * should be on the disk the store uses). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double thread_cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void nap(long ns) {
  struct timespec s = {0, ns};
  nanosleep(&s, 0);
}

/* The eventfd probe: a peer writes every 300 us; the waiter sleeps in
 * epoll_wait without a timeout, as an idle async runtime does. */
static int efd, ep;
enum { WAKES = 5000, ROUND_TRIPS = 20000 };
static void *writer(void *arg) {
  (void)arg;
  for (int i = 0; i < WAKES; i++) {
    nap(300000);
    uint64_t one = 1;
    if (write(efd, &one, 8) != 8) abort();
  }
  return 0;
}

static double eventfd_wake(void) {
  efd = eventfd(0, EFD_NONBLOCK);
  ep = epoll_create1(0);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e);
  pthread_t peer;
  pthread_create(&peer, 0, writer, 0);
  double c = thread_cpu();
  for (uint64_t got = 0; got < WAKES;) {
    struct epoll_event out;
    uint64_t n;
    if (epoll_wait(ep, &out, 1, -1) > 0 && read(efd, &n, 8) == 8) got += n;
  }
  c = thread_cpu() - c;
  pthread_join(peer, 0);
  return c / WAKES;
}

/* The futex probe: two threads hand a token back and forth. */
static atomic_int ping, pong;
static int pong_cpu;
static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
static void wake(atomic_int *f) { syscall(SYS_futex, f, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0); }
static void wait_past(atomic_int *f, int v) {
  while (atomic_load(f) == v) syscall(SYS_futex, f, FUTEX_WAIT_PRIVATE, v, 0, 0, 0);
}
static void *ponger(void *arg) {
  (void)arg;
  pin(pong_cpu);
  for (int i = 0; i < ROUND_TRIPS; i++) {
    wait_past(&ping, i);
    atomic_store(&pong, i + 1);
    wake(&pong);
  }
  return 0;
}

/* Both threads on `cpu0` and `cpu1`: across vCPUs a wake is an
 * inter-processor interrupt, on one vCPU a switch. */
static double futex_round_trip(int cpu0, int cpu1) {
  struct timespec t0, t1;
  pthread_t peer;
  atomic_store(&ping, 0);
  atomic_store(&pong, 0);
  pin(cpu0);
  pong_cpu = cpu1;
  pthread_create(&peer, 0, ponger, 0);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
  for (int i = 0; i < ROUND_TRIPS; i++) {
    atomic_store(&ping, i + 1);
    wake(&ping);
    wait_past(&pong, i);
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
  pthread_join(peer, 0);
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &all);
  pthread_setaffinity_np(pthread_self(), sizeof all, &all);
  return (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
}

static double fsync_after_write(const char *dir, int kb, int n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/host_costs.probe", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { perror(path); exit(1); }
  char *buf = malloc(kb * 1024);
  memset(buf, 1, kb * 1024);
  double c = thread_cpu();
  for (int i = 0; i < n; i++) {
    if (pwrite(fd, buf, kb * 1024, (off_t)(i % 256) * kb * 1024) < 0) abort();
    fsync(fd);
  }
  c = thread_cpu() - c;
  close(fd);
  unlink(path);
  free(buf);
  return c / n;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  int n = 20000;
  double c = thread_cpu();
  for (int i = 0; i < n * 10; i++) syscall(SYS_getppid);
  printf("system call:                 %6.2f us\n", (thread_cpu() - c) * 1e6 / (n * 10));
  c = thread_cpu();
  for (int i = 0; i < 4000; i++) nap(300000);
  printf("timer sleep and wake:        %6.2f us (the sleeper's CPU)\n", (thread_cpu() - c) * 1e6 / 4000);
  printf("wake by eventfd:             %6.2f us (the woken thread's CPU)\n", eventfd_wake() * 1e6);
  printf("futex round trip, two vCPUs: %6.2f us (both threads' CPU)\n", futex_round_trip(0, 1) * 1e6 / ROUND_TRIPS);
  printf("futex round trip, one vCPU:  %6.2f us (both threads' CPU)\n", futex_round_trip(0, 0) * 1e6 / ROUND_TRIPS);
  printf("16 KB write + fsync:         %6.2f us (the writer's CPU)\n", fsync_after_write(dir, 16, 2000) * 1e6);
  return 0;
}
