#ifndef ACCORD_CSUPPORT_H
#define ACCORD_CSUPPORT_H
#include <spawn.h>

/// pipe2(O_CLOEXEC): both ends close-on-exec, atomically (no leak into a concurrent spawn).
int accord_pipe_cloexec(int fds[2]);
/// posix_spawn_file_actions_addclosefrom_np: the child closes every descriptor from `low` up.
int accord_spawn_closefrom(posix_spawn_file_actions_t *actions, int low);

/// posix_spawn_file_actions_addchdir_np: the child starts in `path`.
int accord_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path);

#endif
