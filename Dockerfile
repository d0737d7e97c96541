# Build: a static binary, no cgo (the SQLite driver is pure Go).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" \
      -o /out/mail2archer ./cmd/mail2archer \
 && mkdir -p /out/data

# Run: distroless static image, as the non-root user 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mail2archer /usr/local/bin/mail2archer
COPY --from=build --chown=65532:65532 /out/data /data
ENV M2A_LISTEN_ADDR=:8080 \
    M2A_DATABASE_URL=sqlite:///data/mail2archer.db
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/mail2archer", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/mail2archer"]
CMD ["serve"]
