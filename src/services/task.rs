//! TaskService: placeholder until implemented.

use tonic::{Request, Response, Status};

use super::Gateway;
use crate::proto::close::v1::task_service_server::TaskService as Api;
use crate::proto::close::v1::*;

pub struct TaskService {
    #[allow(dead_code)]
    gateway: Gateway,
}

impl TaskService {
    pub fn new(gateway: Gateway) -> Self {
        TaskService { gateway }
    }
}

#[tonic::async_trait]
impl Api for TaskService {
    async fn get_task(
        &self,
        _request: Request<GetTaskRequest>,
    ) -> Result<Response<GetTaskResponse>, Status> {
        Err(Status::unimplemented("GetTask"))
    }
    async fn list_tasks(
        &self,
        _request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        Err(Status::unimplemented("ListTasks"))
    }
    async fn create_task(
        &self,
        _request: Request<CreateTaskRequest>,
    ) -> Result<Response<CreateTaskResponse>, Status> {
        Err(Status::unimplemented("CreateTask"))
    }
    async fn update_task(
        &self,
        _request: Request<UpdateTaskRequest>,
    ) -> Result<Response<UpdateTaskResponse>, Status> {
        Err(Status::unimplemented("UpdateTask"))
    }
    async fn complete_task(
        &self,
        _request: Request<CompleteTaskRequest>,
    ) -> Result<Response<CompleteTaskResponse>, Status> {
        Err(Status::unimplemented("CompleteTask"))
    }
    async fn delete_task(
        &self,
        _request: Request<DeleteTaskRequest>,
    ) -> Result<Response<DeleteTaskResponse>, Status> {
        Err(Status::unimplemented("DeleteTask"))
    }
}
