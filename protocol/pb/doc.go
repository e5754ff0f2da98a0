// Package pb holds the generated protobuf messages of the dragonfly wire
// protocols. Do not edit the *.pb.go files: edit the .proto files and run
// `make generate`. Decode frames with protocol.ReadMsg, which bounds every
// frame, and validate them with the protocol package's Validate functions.
package pb
