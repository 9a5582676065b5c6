from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Order
from .tasks import process_order


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    """Create an order and process it in the background once the transaction commits."""
    with transaction.atomic():
        order = Order.objects.create(
            product=request.POST["product"], quantity=int(request.POST.get("quantity", 1))
        )
        # The worker must see the row: send only after the commit.
        transaction.on_commit(lambda: process_order.delay(order.pk))
    return JsonResponse({"order": order.pk}, status=202)
