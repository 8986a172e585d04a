/* The connection flood of flood_peer.py, in C (the same arguments and JSON line), so that reaching 10,000
   attempts per second does not need a whole CPU of a busy machine: one process, two threads each opening
   half the rate (on loopback the kernel's work for a connect runs in the caller's thread).
   Built by test_admission_live.py with cc -pthread.  usage: flood_peer HOST PORT RATE SECONDS SOURCE HOLD_MS */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
#define RING 65536

static volatile sig_atomic_t stop_flag = 0;
static void on_term(int sig) { (void)sig; stop_flag = 1; }
static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

#define THREADS 2
struct job { struct sockaddr_in dst, src; double rate, seconds, hold; long attempts, failed; };

static void *flood(void *arg) {
    struct job *j = arg;
    double burst = 0.01;
    int per_burst = (int)(j->rate * burst); if (per_burst < 1) per_burst = 1;
    int *fds = malloc(sizeof(int) * RING); double *opened = malloc(sizeof(double) * RING);
    long head = 0, tail = 0;
    struct linger lg = {1, 0}; int one = 1;
    double t0 = now_s(), next = t0;
    while (!stop_flag && now_s() - t0 < j->seconds) {
        double t = now_s();
        while (tail < head && t - opened[tail % RING] >= j->hold) close(fds[tail++ % RING]);
        for (int i = 0; i < per_burst; i++) {
            j->attempts++;
            int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (s < 0) { j->failed++; continue; }
            setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            if (bind(s, (struct sockaddr *)&j->src, sizeof j->src) < 0 ||
                (connect(s, (struct sockaddr *)&j->dst, sizeof j->dst) < 0 && errno != EINPROGRESS)) {
                j->failed++; close(s); continue;
            }
            if (head - tail >= RING) close(fds[tail++ % RING]);
            fds[head % RING] = s; opened[head % RING] = t; head++;
        }
        next += burst;
        double delay = next - now_s();
        if (delay > 0) { struct timespec d = {(time_t)delay, (long)((delay - (time_t)delay) * 1e9)}; nanosleep(&d, NULL); }
        else if (delay < -1.0) next = now_s();
    }
    while (tail < head) close(fds[tail++ % RING]);
    free(fds); free(opened);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: %s HOST PORT RATE SECONDS SOURCE HOLD_MS\n", argv[0]); return 2; }
    struct job jobs[THREADS]; pthread_t th[THREADS];
    memset(jobs, 0, sizeof jobs);
    for (int k = 0; k < THREADS; k++) {
        struct job *j = &jobs[k];
        j->dst.sin_family = AF_INET; j->dst.sin_port = htons(atoi(argv[2]));
        j->src.sin_family = AF_INET;
        if (inet_pton(AF_INET, argv[1], &j->dst.sin_addr) != 1 || inet_pton(AF_INET, argv[5], &j->src.sin_addr) != 1)
            return 2;
        j->rate = atof(argv[3]) / THREADS; j->seconds = atof(argv[4]); j->hold = atof(argv[6]) / 1000.0;
    }
    signal(SIGTERM, on_term);
    double t0 = now_s();
    for (int k = 0; k < THREADS; k++) pthread_create(&th[k], NULL, flood, &jobs[k]);
    long attempts = 0, failed = 0;
    for (int k = 0; k < THREADS; k++) { pthread_join(th[k], NULL); attempts += jobs[k].attempts; failed += jobs[k].failed; }
    double elapsed = now_s() - t0;
    printf("{\"attempts\": %ld, \"seconds\": %.3f, \"rate\": %ld, \"failed_at_once\": %ld}\n",
           attempts, elapsed, (long)(attempts / elapsed), failed);
    fflush(stdout);
    return 0;
}
