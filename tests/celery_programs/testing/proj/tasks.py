from celery import shared_task


@shared_task
def mul(x, y):
    return x * y


@shared_task(bind=True)
def who(self):
    return self.request.hostname is not None
