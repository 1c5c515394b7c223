from tests.api.conftest import World, bearer


def test_a_learner_starts(world: World, queue) -> None:
    attempt = world.new_attempt(external_id="x-1")
    r = world.client.post(
        f"/v1/attempts/{attempt['attempt_id']}/transitions",
        headers=bearer(world.learner),
        json={"to_status": "started"},
    )
    assert r.status_code == 202, r.text
    print(r.json(), queue.messages())
