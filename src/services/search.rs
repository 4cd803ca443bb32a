//! SearchService: placeholder until implemented.

use tonic::{Request, Response, Status};

use super::Gateway;
use crate::proto::close::v1::search_service_server::SearchService as Api;
use crate::proto::close::v1::*;

pub struct SearchService {
    #[allow(dead_code)]
    gateway: Gateway,
}

impl SearchService {
    pub fn new(gateway: Gateway) -> Self {
        SearchService { gateway }
    }
}

#[tonic::async_trait]
impl Api for SearchService {
    async fn search(
        &self,
        _request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        Err(Status::unimplemented("Search"))
    }
    type SearchAllStream = futures::stream::BoxStream<'static, Result<SearchAllResponse, Status>>;
    async fn search_all(
        &self,
        _request: Request<SearchAllRequest>,
    ) -> Result<Response<Self::SearchAllStream>, Status> {
        Err(Status::unimplemented("SearchAll"))
    }
}
