//! The three AWS services gitsync answers, and how requests name them.

use crate::shapes::{CODECONNECTIONS, CODESTAR_CONNECTIONS, PROTON, ServiceModel};
use gitsync_model::ArnService;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Proton,
    CodeConnections,
    CodestarConnections,
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    AwsJson10,
    RpcV2Cbor,
}

impl Service {
    pub fn model(self) -> &'static ServiceModel {
        match self {
            Service::Proton => &PROTON,
            Service::CodeConnections => &CODECONNECTIONS,
            Service::CodestarConnections => &CODESTAR_CONNECTIONS,
        }
    }

    /// The service name in the SigV4 credential scope.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Proton => "proton",
            Service::CodeConnections => "codeconnections",
            Service::CodestarConnections => "codestar-connections",
        }
    }

    /// The service named by an `X-Amz-Target` prefix. botocore and the CLI send the model's
    /// `targetPrefix`; the JavaScript and Rust SDKs send the Smithy service name without its
    /// namespace.
    pub fn from_target_prefix(prefix: &str) -> Option<Service> {
        match prefix {
            "AwsProton20200720" | "com.amazonaws.proton.AwsProton20200720" => Some(Service::Proton),
            "com.amazonaws.codeconnections.CodeConnections_20231201"
            | "CodeConnections_20231201" => Some(Service::CodeConnections),
            "com.amazonaws.codestar.connections.CodeStar_connections_20191201"
            | "CodeStar_connections_20191201" => Some(Service::CodestarConnections),
            _ => None,
        }
    }

    /// The service named in an RPC v2 CBOR path (`/service/{name}/operation/{op}`). Only
    /// CodeConnections speaks CBOR; the Rust SDK sends the bare name, botocore the qualified one.
    pub fn from_cbor_service_name(name: &str) -> Option<Service> {
        match name {
            "CodeConnections_20231201"
            | "com.amazonaws.codeconnections.CodeConnections_20231201" => {
                Some(Service::CodeConnections)
            }
            _ => None,
        }
    }

    /// The exception a service models for invalid input.
    pub fn validation_exception(self) -> &'static str {
        match self {
            Service::Proton => "ValidationException",
            Service::CodeConnections | Service::CodestarConnections => "InvalidInputException",
        }
    }

    /// The member that carries an error's message, spelled as the service's model spells it.
    pub fn message_member(self) -> &'static str {
        match self {
            Service::Proton => "message",
            Service::CodeConnections | Service::CodestarConnections => "Message",
        }
    }

    /// The ARN service segment of resources created through this API.
    pub fn arn_service(self) -> ArnService {
        match self {
            Service::CodestarConnections => ArnService::CodestarConnections,
            Service::Proton | Service::CodeConnections => ArnService::CodeConnections,
        }
    }
}
