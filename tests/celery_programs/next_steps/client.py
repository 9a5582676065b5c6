from celery import chain, chord, group, signature
from proj.tasks import add, mul, xsum

res = add.delay(2, 2)
print(res.get(timeout=30))
print(add.apply_async((2, 2), queue="lopri", countdown=1).get(timeout=30))
print(add.s(2).delay(8).get(timeout=30))
print(signature("proj.tasks.add", args=(2, 2), countdown=1).delay().get(timeout=30))
print(group(add.s(i, i) for i in range(10))().get(timeout=30))
print(group(add.s(i) for i in range(10))(10).get(timeout=30))
print(chain(add.s(4, 4) | mul.s(8))().get(timeout=30))
print((add.s(4, 4) | mul.s(8) | mul.s(10))().get(timeout=30))
print(chord((add.s(i, i) for i in range(10)), xsum.s())().get(timeout=30))
print(add.s(2, 2).set(countdown=1).delay().get(timeout=30))
res = add.delay(2, "2")
try:
    res.get(timeout=30)
except TypeError:
    print("TypeError")
print(res.failed(), res.state)
