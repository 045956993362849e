//! Compiles the wire contract with protox (pure Rust: no protoc needed) and writes the
//! descriptor set beside the generated code for gRPC reflection.
use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "queue/v1/queue.proto",
    "catalog/v1/catalog.proto",
    "reservation/v1/reservation.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let descriptor_path = out_dir.join("ticketing_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_fds(descriptors)?;
    Ok(())
}
