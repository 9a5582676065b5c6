from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from shop.models import Order
from shop.tasks import process_order


class Command(BaseCommand):
    help = "Create an order; the worker processes it once the transaction commits."

    def add_arguments(self, parser):
        parser.add_argument("product")
        parser.add_argument("quantity", type=int)
        parser.add_argument(
            "--fail", action="store_true", help="Roll the transaction back: nothing is sent."
        )

    def handle(self, *args, **options):
        with transaction.atomic():
            order = Order.objects.create(product=options["product"], quantity=options["quantity"])
            # The worker must see the row: send only after the commit.
            transaction.on_commit(lambda: process_order.delay(order.pk))
            if options["fail"]:
                raise CommandError(f"rolled back order {order.pk}: no task was sent")
        self.stdout.write(f"order {order.pk} placed")
