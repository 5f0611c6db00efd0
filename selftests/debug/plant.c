// SPDX-License-Identifier: GPL-2.0
/*
 * vhost_blk_plant.ko: does wrong on purpose when it is loaded, once for each
 * check of `make check-debug`, so that `make check-debug CHECK_DEBUG_PLANT=1`
 * shows every one of them failing: a leaked allocation (kmemleak), a read
 * past the end of an allocation (KASAN), two mutexes taken in both orders
 * (lockdep), a might_sleep() with preemption off (DEBUG_ATOMIC_SLEEP) and a
 * WARN. Built only against the debug kernel; never load it anywhere else.
 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>

static DEFINE_MUTEX(plant_a);
static DEFINE_MUTEX(plant_b);

static int __init plant_init(void)
{
	unsigned int past_end = 16;
	char *p;

	/* First: a KASAN report taints the kernel, which turns lockdep off. */
	mutex_lock(&plant_a);
	mutex_lock(&plant_b);
	mutex_unlock(&plant_b);
	mutex_unlock(&plant_a);
	mutex_lock(&plant_b);
	mutex_lock(&plant_a);
	mutex_unlock(&plant_a);
	mutex_unlock(&plant_b);

	preempt_disable();
	might_sleep();
	preempt_enable();

	WARN(1, "vhost_blk_plant: a planted warning\n");

	/* Nothing refers to it once this returns. */
	p = kmalloc(96, GFP_KERNEL);
	OPTIMIZER_HIDE_VAR(p);

	p = kmalloc(16, GFP_KERNEL);
	if (p) {
		OPTIMIZER_HIDE_VAR(past_end);
		pr_info("vhost_blk_plant: byte past the end: %d\n", READ_ONCE(p[past_end]));
		kfree(p);
	}
	return 0;
}

static void __exit plant_exit(void)
{
}

module_init(plant_init);
module_exit(plant_exit);
MODULE_DESCRIPTION("Planted bugs that make check-debug must report");
MODULE_LICENSE("GPL");
