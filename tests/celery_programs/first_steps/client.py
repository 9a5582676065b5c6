from tasks import add

result = add.delay(4, 4)
print(result.get(timeout=30))
print(result.ready(), result.successful(), result.state)
print(add.apply_async((2, 2), countdown=1).get(timeout=30))
