//! Compiles `proto/` into Rust with protox (no system `protoc` needed) and writes the
//! encoded descriptor set that server reflection serves.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/rapport/v1/common.proto",
    "proto/rapport/v1/survey_service.proto",
    "proto/rapport/v1/follow_up_service.proto",
    "proto/rapport/v1/engagement_service.proto",
    "proto/rapport/v1/webhook_service.proto",
    "proto/rapport/v1/import_service.proto",
    "proto/rapport/v1/privacy_service.proto",
    "proto/rapport/v1/admin_service.proto",
    "proto/rapport/v1/insight_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    // `encode_file_descriptor_set` keeps custom options that `compile()` drops.
    fs::write(out.join("rapport_descriptor.bin"), compiler.encode_file_descriptor_set())?;

    // Every message names itself (`prost::Name`) so the checking codec can find its
    // descriptor; every RPC decodes through that codec (src/grpc/codec.rs), which
    // refuses control characters and out-of-range timestamps before a handler runs.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::grpc::codec::CheckedCodec")
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}
