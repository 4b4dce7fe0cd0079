#!/bin/sh
# As the official image's docker-entrypoint.sh: flags alone go to redis-server, which runs as the redis
# user in its data dir. The official build turns protected mode off (the container network is the
# boundary); Debian's binary has it on, so it is turned off here.
set -e
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis .
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
