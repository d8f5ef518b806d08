//go:build cgo

// The one piece of C in minictr: joining a running container's user
// namespace, which `minictr exec` needs when the container has one.
//
// Why C, and why in a constructor: setns(2) into a user namespace fails
// with EINVAL in a multithreaded process (a user namespace changes the
// credentials of the whole process, so the kernel insists there is only
// one thread). A Go program is multithreaded before main() runs. A C
// constructor runs earlier still: the dynamic loader calls it before the
// Go runtime starts its first thread. So this function joins, and the Go
// runtime then starts inside the namespaces.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// How the Go side learns what failed: library code prints nothing, and
// the Go runtime is not there yet to return an error to.
char minictr_nsenter_op[8], minictr_nsenter_path[64];
int minictr_nsenter_errno;

// The PID namespace is opened here but joined by the Go side: once a
// process has called setns(CLONE_NEWPID) the kernel refuses it new
// threads (clone(2), EINVAL with CLONE_THREAD), and the Go runtime needs
// threads. Go joins it on one locked thread and starts the command from
// there: only children enter a PID namespace anyway.
int minictr_nsenter_pidns_fd = -1;

// The order matters. user first: each other setns checks CAP_SYS_ADMIN
// in the user namespace that owns the target namespace, and once inside
// it we hold every capability there, whatever we were on the host (an
// unprivileged engine would hold none otherwise). mnt last: joining it
// changes our root and working directory to the container's.
static const struct { const char *name; int flag; } order[] = {
	{"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
	{"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP},
	{"mnt", CLONE_NEWNS},
};
#define NKINDS (sizeof(order) / sizeof(order[0]))

// fail records the error; the Go side reports it and exits. The fds
// still open are close-on-exec and die with the process.
static void fail(const char *op, const char *path) {
	minictr_nsenter_errno = errno;
	snprintf(minictr_nsenter_op, sizeof(minictr_nsenter_op), "%s", op);
	snprintf(minictr_nsenter_path, sizeof(minictr_nsenter_path), "%s", path);
}

__attribute__((constructor)) static void minictr_nsenter(void) {
	const char *spec = getenv("_MINICTR_NSENTER"); // "<pid>:<kind>,<kind>,..."
	if (spec == NULL)
		return; // an ordinary start: nothing to join
	char *rest;
	long pid = strtol(spec, &rest, 10);
	if (*rest != ':') { // never run the command unjoined
		errno = EINVAL;
		return fail("parse", spec);
	}
	char kinds[64];
	snprintf(kinds, sizeof(kinds), ",%s,", rest + 1);
	int fds[NKINDS];
	char path[64];
	// Open every namespace before joining any: after setns(mnt) the /proc
	// we see is the container's, which may not show <pid> at all.
	for (size_t i = 0; i < NKINDS; i++) {
		char needle[16];
		snprintf(needle, sizeof(needle), ",%s,", order[i].name);
		fds[i] = -1;
		if (strstr(kinds, needle) == NULL)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/ns/%s", pid, order[i].name);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return fail("open", path);
	}
	for (size_t i = 0; i < NKINDS; i++) {
		if (order[i].flag == CLONE_NEWPID)
			minictr_nsenter_pidns_fd = fds[i]; // see above
		if (fds[i] < 0 || order[i].flag == CLONE_NEWPID)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/ns/%s", pid, order[i].name);
		if (setns(fds[i], order[i].flag) < 0)
			return fail("setns", path);
		close(fds[i]);
	}
}
