# Build: static binaries, no cgo.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# -tags nodemo: the image carries no demo (no fake Confluence, no miniredis).
RUN CGO_ENABLED=0 go build -trimpath -tags nodemo -ldflags="-s -w" -o /out/worker ./cmd/worker \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/enqueue ./cmd/enqueue

# Run: nothing but the binaries and CA certificates, as a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/enqueue /usr/local/bin/
# Numeric (distroless "nonroot"): a runtime can only check runAsNonRoot
# against a number.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/worker"]
