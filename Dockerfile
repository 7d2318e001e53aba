# One image for every Pygmy role; the command picks the role, as on a host
# of its own (DESIGN §1):
#
#   docker run pygmy                                    # front end 1 (the default)
#   docker run pygmy pygmy-frontend --config /etc/pygmy/config.ini --name 2
#   docker run pygmy pygmy-catalog  --config /etc/pygmy/config.ini --replica A
#   docker run pygmy pygmy-order    --config /etc/pygmy/config.ini --replica B
#
# compose.yaml runs three front ends and two replicas of each service this
# way, with etcd and HAProxy; docs/deployment.rst explains it and a
# deployment over several hosts.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.rst ./
COPY pygmy ./pygmy
COPY twisted ./twisted
# The daemons only: no test or load-generator extras.  Then build twistd's
# plugin cache, as root: the non-root user below cannot write into
# site-packages, and twistd would otherwise warn about it at each start.
RUN pip install . \
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
    && rm -rf /src

# A user of its own, and a data directory it owns (one SQLite file per replica).
RUN groupadd --system pygmy \
    && useradd --system --gid pygmy --home-dir /var/lib/pygmy --shell /usr/sbin/nologin pygmy \
    && mkdir -p /var/lib/pygmy /etc/pygmy \
    && chown pygmy:pygmy /var/lib/pygmy
# The example configuration; compose.yaml mounts docker/config.ini over it.
COPY docker/config.ini /etc/pygmy/config.ini

USER pygmy
WORKDIR /var/lib/pygmy
# data_dir of docker/config.ini: keep it on a volume so a replica's data
# survives its container.
VOLUME ["/var/lib/pygmy"]

# Front ends: 8080 (public HTTP API) and 8090 (heartbeats from the replicas);
# catalog A/B: 8081/8082; order A/B: 8083/8084 (as in docker/config.ini).
# Only 8080 is meant for clients; keep the others on the internal network.
EXPOSE 8080 8090 8081 8082 8083 8084

# In the foreground, logging to stdout, with no pid file; twistd stops
# cleanly on SIGTERM (docker stop).
ENTRYPOINT ["twistd", "-n", "--pidfile="]
CMD ["pygmy-frontend", "--config", "/etc/pygmy/config.ini", "--name", "1"]
