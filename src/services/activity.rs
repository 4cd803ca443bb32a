//! ActivityService: placeholder until implemented.

use tonic::{Request, Response, Status};

use super::Gateway;
use crate::proto::close::v1::activity_service_server::ActivityService as Api;
use crate::proto::close::v1::*;

pub struct ActivityService {
    #[allow(dead_code)]
    gateway: Gateway,
}

impl ActivityService {
    pub fn new(gateway: Gateway) -> Self {
        ActivityService { gateway }
    }
}

#[tonic::async_trait]
impl Api for ActivityService {
    async fn list_activities(
        &self,
        _request: Request<ListActivitiesRequest>,
    ) -> Result<Response<ListActivitiesResponse>, Status> {
        Err(Status::unimplemented("ListActivities"))
    }
    async fn get_activity(
        &self,
        _request: Request<GetActivityRequest>,
    ) -> Result<Response<GetActivityResponse>, Status> {
        Err(Status::unimplemented("GetActivity"))
    }
    async fn create_email_activity(
        &self,
        _request: Request<CreateEmailActivityRequest>,
    ) -> Result<Response<CreateEmailActivityResponse>, Status> {
        Err(Status::unimplemented("CreateEmailActivity"))
    }
    async fn create_note_activity(
        &self,
        _request: Request<CreateNoteActivityRequest>,
    ) -> Result<Response<CreateNoteActivityResponse>, Status> {
        Err(Status::unimplemented("CreateNoteActivity"))
    }
    async fn create_call_activity(
        &self,
        _request: Request<CreateCallActivityRequest>,
    ) -> Result<Response<CreateCallActivityResponse>, Status> {
        Err(Status::unimplemented("CreateCallActivity"))
    }
    async fn create_sms_activity(
        &self,
        _request: Request<CreateSmsActivityRequest>,
    ) -> Result<Response<CreateSmsActivityResponse>, Status> {
        Err(Status::unimplemented("CreateSmsActivity"))
    }
    async fn update_activity(
        &self,
        _request: Request<UpdateActivityRequest>,
    ) -> Result<Response<UpdateActivityResponse>, Status> {
        Err(Status::unimplemented("UpdateActivity"))
    }
    async fn delete_activity(
        &self,
        _request: Request<DeleteActivityRequest>,
    ) -> Result<Response<DeleteActivityResponse>, Status> {
        Err(Status::unimplemented("DeleteActivity"))
    }
}
