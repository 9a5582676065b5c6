"""The shop's tasks: found by app.autodiscover_tasks(), written with @shared_task."""

import os

from celeriac import shared_task

from .models import Order


@shared_task
def process_order(order_id):
    order = Order.objects.get(pk=order_id)
    order.status = "processed"
    order.processed_by = f"pid {os.getpid()}"
    order.save(update_fields=["status", "processed_by"])
    return order.status


@shared_task
def create_order(product, quantity):
    return Order.objects.create(product=product, quantity=quantity).pk


@shared_task
def count_orders():
    return Order.objects.count()


@shared_task(bind=True)
def order_summary(self, order_id):
    order = Order.objects.get(pk=order_id)
    return {"product": order.product, "quantity": order.quantity, "task": self.name}
