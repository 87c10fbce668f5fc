# Campaign Manager: every tool in one small image; the command picks the tool.
#   docker build -t campaign-manager .
#   docker run --rm -i campaign-manager cm-ingest --format csv < examples/orders.csv
#   docker run -e CM_JWT_SECRET=... -e CM_DATABASE_URL=... -p 8000:8000 campaign-manager
# The build stage compiles with the project's Makefile, runs the unit tests
# (cmocka: they need no server) and installs into /usr of a staging
# directory; the runtime stage holds only the shared libraries, the tools,
# their man pages and the SQL migrations, and runs unprivileged. Both take
# their package lists from packaging/deps.sh. packaging/compose.yaml runs
# the whole system from this image.

FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY packaging/deps.sh packaging/deps.sh
RUN packaging/deps.sh build unit \
	&& rm -rf /var/lib/apt/lists/*
COPY . .
# make clean drops any binaries the build context brought along.
RUN make clean \
	&& make -j"$(nproc)" all completions unit \
	&& make unit-check \
	&& make install PREFIX=/usr DESTDIR=/stage

FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
COPY packaging/deps.sh /tmp/deps.sh
RUN /tmp/deps.sh runtime \
	&& rm -rf /var/lib/apt/lists/* /tmp/deps.sh \
	&& useradd --system --uid 10001 --user-group --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin campaign-manager
COPY --from=build /stage/usr/ /usr/
COPY packaging/docker/cm-healthcheck /usr/local/bin/cm-healthcheck
# In a container cm-httpd listens on every address of the container's own
# network namespace; publish the port to choose who reaches it.
ENV CM_LISTEN=0.0.0.0:8000
# A numeric user, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# GET /health when the container runs cm-httpd; other tools are healthy while
# they run.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
	CMD ["cm-healthcheck", "--if-httpd"]
CMD ["cm-httpd"]
