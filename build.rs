//! Generates the gRPC code and the descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos: Vec<PathBuf> = [
        "proto/close/v1/lead.proto",
        "proto/close/v1/task.proto",
        "proto/close/v1/activity.proto",
        "proto/close/v1/search.proto",
        "proto/close/v1/raw.proto",
        "proto/close/v1/rate_limit.proto",
        "proto/google/rpc/error_details.proto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("close_descriptor.bin"))
        .compile_with_config(config, &protos, &[PathBuf::from("proto"), include])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
