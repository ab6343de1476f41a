/* sd_none.c -- the two libsystemd calls of a statically linked libdbus.
 *
 * bin/rewind-core links libpcap statically (see the Makefile: the shared libpcap
 * loads libdbus and, through it, libsystemd, libgcrypt, liblzma, libcap and
 * more, whose mapping and relocation were a fifth of a short query). libpcap
 * needs libdbus for its D-Bus capture source, and libdbus.a calls these two
 * functions only when a dbus-daemon is started by systemd socket activation,
 * which bin/rewind-core never is. They answer as sd_listen_fds(3) and
 * sd_is_socket(3) do for a process that was passed no sockets. */
int sd_listen_fds(int unset_environment);
int sd_is_socket(int fd, int family, int type, int listening);

int sd_listen_fds(int unset_environment)
{
    (void)unset_environment;
    return 0;
}

int sd_is_socket(int fd, int family, int type, int listening)
{
    (void)fd;
    (void)family;
    (void)type;
    (void)listening;
    return 0;
}
