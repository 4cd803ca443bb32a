"""close-gateway called from Python grpcio, with stubs generated from proto/ during the run,
against `close-gateway --dev` and its sample data."""

import grpc
import pytest


@pytest.fixture(scope="module")
def pb(stubs):
    """The generated modules, imported once the stubs exist."""
    from close.v1 import activity_pb2, activity_pb2_grpc, lead_pb2, lead_pb2_grpc
    from google.rpc import error_details_pb2, status_pb2
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    class Modules:
        pass

    m = Modules()
    for module in (activity_pb2, activity_pb2_grpc, lead_pb2, lead_pb2_grpc, error_details_pb2,
                   status_pb2, health_pb2, health_pb2_grpc):
        setattr(m, module.__name__.rsplit(".", 1)[1], module)
    return m


@pytest.fixture(scope="module")
def leads(pb, channel):
    return pb.lead_pb2_grpc.LeadServiceStub(channel)


@pytest.fixture(scope="module")
def activities(pb, channel):
    return pb.activity_pb2_grpc.ActivityServiceStub(channel)


def all_leads(pb, leads, page_size):
    """Walks ListLeads page by page; returns (ids in order, number of pages)."""
    ids, pages, token = [], 0, ""
    while True:
        page = leads.ListLeads(pb.lead_pb2.ListLeadsRequest(page_size=page_size, page_token=token))
        pages += 1
        ids.extend(lead.id for lead in page.leads)
        token = page.next_page_token
        if not token:
            return ids, pages
        assert pages < 1000, "ListLeads never ends"


# The --dev sample data (src/emulator/seed.rs).
DEV_LEAD_ID = "lead_dev1AcmeRockets"
DEV_LEAD_IDS = {
    "lead_dev1AcmeRockets",
    "lead_dev2GlobexCorp",
    "lead_dev3Initech",
    "lead_dev4Umbrella",
    "lead_dev5Hooli",
}


@pytest.fixture(scope="module")
def sample_lead(pb, leads):
    return leads.GetLead(pb.lead_pb2.GetLeadRequest(id=DEV_LEAD_ID), timeout=10).lead


def test_get_lead_returns_the_sample_lead(sample_lead):
    assert sample_lead.id == DEV_LEAD_ID
    assert sample_lead.name == "Acme Rockets"
    assert sample_lead.display_name == "Acme Rockets"
    assert sample_lead.url == "https://acme.example.com"
    assert [c.name for c in sample_lead.contacts] == ["Wile E. Coyote"]
    assert [e.email for e in sample_lead.contacts[0].emails] == ["wile@acme.example.com"]
    assert [(a.city, a.state) for a in sample_lead.addresses] == [("Tucson", "AZ")]
    assert sample_lead.custom["cf_devIndustry"].string_value == "Aerospace"
    assert sample_lead.custom["cf_devSeats"].number_value == 25
    assert sample_lead.HasField("date_created")


def test_list_leads_pages_through_every_lead_once(pb, leads):
    one_page, pages = all_leads(pb, leads, 100)
    assert pages == 1
    assert set(one_page) == DEV_LEAD_IDS
    paged, pages = all_leads(pb, leads, 2)
    assert paged == one_page
    assert pages == 3


def test_create_note_activity(pb, activities, sample_lead):
    note = "Called from Python: asked for a demo next week."
    created = activities.CreateNoteActivity(
        pb.activity_pb2.CreateNoteActivityRequest(lead_id=sample_lead.id, note=note), timeout=10
    ).activity
    assert created.id.startswith("acti_")
    assert created.type == pb.activity_pb2.ACTIVITY_TYPE_NOTE
    assert created.lead_id == sample_lead.id
    assert created.note == note

    listed = activities.ListActivities(
        pb.activity_pb2.ListActivitiesRequest(
            lead_id=sample_lead.id, types=[pb.activity_pb2.ACTIVITY_TYPE_NOTE], page_size=100
        ),
        timeout=10,
    )
    assert [a.note for a in listed.activities if a.id == created.id] == [note]


def test_invalid_id_is_invalid_argument_with_bad_request_details(pb, leads):
    with pytest.raises(grpc.RpcError) as raised:
        leads.GetLead(pb.lead_pb2.GetLeadRequest(id="cont_not_a_lead"), timeout=10)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    trailers = dict(error.trailing_metadata())
    assert "grpc-status-details-bin" in trailers, f"no error details in {trailers}"
    status = pb.status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == error.details()

    bad_requests = []
    for detail in status.details:
        if detail.Is(pb.error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = pb.error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            bad_requests.append(bad_request)
    assert len(bad_requests) == 1, f"details: {status.details}"
    assert [v.field for v in bad_requests[0].field_violations] == ["id"]
    assert "lead_" in bad_requests[0].field_violations[0].description


def test_health_is_serving(pb, channel):
    health = pb.health_pb2_grpc.HealthStub(channel)
    serving = pb.health_pb2.HealthCheckResponse.SERVING
    for service in ("", "close.v1.LeadService", "close.v1.ActivityService"):
        answer = health.Check(pb.health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == serving, service
