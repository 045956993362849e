//! The generated gRPC contract (queue, catalog, reservation; v1). Wire types only: services
//! convert them to their own domain types at the edge.
#![allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]

pub mod queue {
    pub mod v1 {
        tonic::include_proto!("ticketing.queue.v1");
    }
}

pub mod catalog {
    pub mod v1 {
        tonic::include_proto!("ticketing.catalog.v1");
    }
}

pub mod reservation {
    pub mod v1 {
        tonic::include_proto!("ticketing.reservation.v1");
    }
}

/// Encoded `FileDescriptorSet` of every service, for gRPC reflection and tooling.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ticketing_descriptor");
