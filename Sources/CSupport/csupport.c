// glibc declares these only under _GNU_SOURCE, which Swift's Glibc module does not set.
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "csupport.h"

int accord_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int accord_spawn_closefrom(posix_spawn_file_actions_t *actions, int low) {
    return posix_spawn_file_actions_addclosefrom_np(actions, low);
}

int accord_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int accord_punch_hole(int fd, off_t offset, off_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}

int accord_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
