# Campaign Manager: every tool in one small image.
#   docker build -t campaign-manager .
#   docker run --rm -i campaign-manager cm-ingest --format csv < examples/orders.csv
# The build stage compiles with the project's Makefile and installs into /usr
# of a staging directory; the runtime stage holds only the shared libraries,
# the tools, their man pages and the SQL migrations, and runs unprivileged.

FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
	&& apt-get install -y --no-install-recommends \
		build-essential pkg-config \
		libhiredis-dev libpq-dev libjq-dev libonig-dev libcsv-dev libpcre2-dev \
		libmicrohttpd-dev libjwt-dev libsodium-dev \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# make clean drops any binaries the build context brought along.
RUN make clean \
	&& make -j"$(nproc)" \
	&& make install PREFIX=/usr DESTDIR=/stage

FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
	&& apt-get install -y --no-install-recommends \
		libhiredis0.14 libpq5 libjq1 libcsv3 libpcre2-8-0 \
		libmicrohttpd12 libjwt0 libsodium23 ca-certificates \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --user-group --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin cm
COPY --from=build /stage/usr/ /usr/
USER cm:cm
WORKDIR /tmp
# cm-httpd listens on 127.0.0.1 by default; in a container publish it with
#   docker run -p 8000:8000 campaign-manager cm-httpd --listen 0.0.0.0:8000
EXPOSE 8000
CMD ["cm-match", "--help"]
