//! The generated protobuf and gRPC code, and the descriptor set served by reflection.

#![allow(clippy::all, missing_docs)]

pub mod close {
    pub mod v1 {
        tonic::include_proto!("close.v1");
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Every file of `proto/` with its imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("close_descriptor");
