# syntax=docker/dockerfile:1
# Static zbca binary (no cgo, so no PKCS#11) on a minimal base, non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN mkdir -p /out/data && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/zbca ./cmd/zbca

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/zbca /usr/local/bin/zbca
# The volume must be writable by the nonroot user (uid 65532).
COPY --from=build --chown=65532:65532 /out/data /data
ENV ZBCA_DATA=/data
VOLUME ["/data"]
EXPOSE 8080 8443
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/zbca"]
CMD ["serve"]
