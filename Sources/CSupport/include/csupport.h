#ifndef ACCORD_CSUPPORT_H
#define ACCORD_CSUPPORT_H
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/types.h>

/// pipe2(O_CLOEXEC): both ends close-on-exec, atomically (no leak into a concurrent spawn).
int accord_pipe_cloexec(int fds[2]);
/// posix_spawn_file_actions_addclosefrom_np: the child closes every descriptor from `low` up.
int accord_spawn_closefrom(posix_spawn_file_actions_t *actions, int low);

/// posix_spawn_file_actions_addchdir_np: the child starts in `path`.
int accord_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// pidfd_open(2): a descriptor that becomes readable when the child `pid` exits, without reaping it
/// (Linux 5.3 and later; -1 with errno set otherwise).
int accord_pidfd_open(pid_t pid);

/// fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): frees the blocks of `[offset, offset +
/// length)`, which then read as zeros; the file keeps its size.
int accord_punch_hole(int fd, off_t offset, off_t length);

#endif
