/*
 * bench_recover.c: the time of one passcrow_recover() call through the C
 * API, against a loopback server. scripts/bench-c-overhead.sh runs it
 * beside examples/bench_recover.rs, which times the same Client::recover
 * in Rust with the same arguments, on the same pack.
 *
 *   bench_recover protect CONFIG_DIR DATA_DIR PACK URL NAME...
 *       protect a pack, 2 of the NAMEs needed (NAME@example.org via URL)
 *   bench_recover CONFIG_DIR DATA_DIR PACK CODES_FILE NAME...
 *       one round per line read on stdin: verify (not timed: codes are
 *       one-shot), read the newest code of each NAME, pause 5 ms (as the
 *       Rust side does), recover (timed); answers each round with a line:
 *       the seconds recover took. The driver alternates rounds between
 *       this process and the Rust one, so both see the same load.
 */
#include <passcrow.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NAMES 8

static void die(const char *what, passcrow_result r) {
    char msg[1024];
    size_t n;
    if (passcrow_error_message(msg, sizeof msg, &n) != PASSCROW_OK) {
        strcpy(msg, "?");
    }
    fprintf(stderr, "bench_recover: %s: %u: %s\n", what, (unsigned)r, msg);
    exit(1);
}

/* The newest code of NAME@example.org (any identity kind). */
static void newest_code(const char *file, const char *name, char *code, size_t len) {
    FILE *f = fopen(file, "r");
    char line[512], want[200];
    code[0] = '\0';
    snprintf(want, sizeof want, ":%s@example.org\t", name);
    if (f == NULL) {
        die("reading the codes file", PASSCROW_IO);
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *at = strstr(line, want);
        if (at != NULL) {
            char *c = at + strlen(want);
            c[strcspn(c, "\r\n")] = '\0';
            if (strlen(c) < len) {
                strcpy(code, c);
            }
        }
    }
    fclose(f);
    if (code[0] == '\0') {
        fprintf(stderr, "bench_recover: no code for %s\n", name);
        exit(1);
    }
}

static int protect(int argc, char **argv) {
    char text[MAX_NAMES][256];
    const char *ids[MAX_NAMES];
    passcrow_client *client = NULL;
    passcrow_policy *policy = NULL;
    passcrow_result r;
    int i, n = argc - 6;

    if (n < 2 || n > MAX_NAMES) {
        fprintf(stderr, "bench_recover protect: 2 to %d names\n", MAX_NAMES);
        return 2;
    }
    for (i = 0; i < n; i++) {
        snprintf(text[i], sizeof text[i], "%s@example.org via %s", argv[6 + i], argv[5]);
        ids[i] = text[i];
    }
    if ((r = passcrow_client_new(argv[2], argv[3], &client)) != PASSCROW_OK) die("client", r);
    if ((r = passcrow_policy_new(client, ids, (size_t)n, 2, (uint32_t)n, &policy)) != PASSCROW_OK)
        die("policy", r);
    passcrow_policy_set_lifetimes(policy, 1, 0);
    r = passcrow_protect(client, argv[4], (const uint8_t *)"bench secret", 12, policy,
                         PASSCROW_EPHEMERAL_NO, false, NULL, NULL);
    if (r != PASSCROW_OK) die("protect", r);
    passcrow_policy_free(policy);
    passcrow_client_free(client);
    return 0;
}

int main(int argc, char **argv) {
    char codes[MAX_NAMES][64];
    const char *typed[MAX_NAMES];
    passcrow_client *client = NULL;
    passcrow_pack *pack = NULL;
    passcrow_result r;
    char line[64];
    int i, n;

    if (argc >= 2 && strcmp(argv[1], "protect") == 0) {
        return protect(argc, argv);
    }
    n = argc - 5;
    if (n < 1 || n > MAX_NAMES) {
        fprintf(stderr, "usage: %s CONFIG_DIR DATA_DIR PACK CODES_FILE NAME...\n", argv[0]);
        return 2;
    }
    if ((r = passcrow_client_new(argv[1], argv[2], &client)) != PASSCROW_OK) die("client", r);
    if ((r = passcrow_pack_open(client, argv[3], &pack)) != PASSCROW_OK) die("pack", r);
    while (fgets(line, sizeof line, stdin) != NULL) {
        passcrow_verification *v = NULL;
        uint8_t *secret = NULL;
        size_t len = 0;
        struct timespec t0, t1, pause = {0, 5000000};
        if ((r = passcrow_verify(client, pack, &v)) != PASSCROW_OK) die("verify", r);
        passcrow_verification_free(v);
        for (i = 0; i < n; i++) {
            newest_code(argv[4], argv[5 + i], codes[i], sizeof codes[i]);
            typed[i] = codes[i];
        }
        nanosleep(&pause, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = passcrow_recover(client, pack, typed, (size_t)n, &secret, &len);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r != PASSCROW_OK) die("recover", r);
        passcrow_bytes_free(secret, len);
        printf("%.9f\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        fflush(stdout);
    }
    passcrow_pack_free(pack);
    passcrow_client_free(client);
    return 0;
}
